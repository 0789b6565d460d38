"""Voice-activity detectors for `sercli predict RUN LONG.wav --segments`:

- ``silero``: Silero VAD, the small neural detector the ``silero-vad`` package ships (its ONNX
  sequence model, run through onnxruntime on the CPU: ``pip install 'sercli[silero]'``); the
  default where it is installed.
- ``energy``: frame energy above an adaptive noise floor, numpy only: the fallback.

Both stream: they see the recording block by block and keep a bounded state, and share the
hysteresis that turns frame scores into spans (``spans.Hysteresis``).
"""

from sercli.hookspecs import hookimpl


@hookimpl
def register_vads(register):
    from sercli_vad.energy import EnergyVAD
    from sercli_vad.silero import SileroVAD

    register(SileroVAD)
    register(EnergyVAD)
