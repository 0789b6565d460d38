"""Offline neural TTS with hibari (``hibari-tts``: small English voices distilled from Kokoro-82M;
the default voice ``heart`` ships in the wheel, Apache-2.0). Install with ``pip install 'sercli[hibari]'``."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_tts_engines(register):
    from sercli_hibari.engine import HibariEngine  # hibari and onnxruntime are imported on first use

    register(HibariEngine)
