"""Offline emotional TTS with espeak-ng (the library shipped in the espeakng-loader wheel)."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_tts_engines(register):
    from sercli_espeak.engine import EspeakEngine  # ctypes loading happens on first use

    register(EspeakEngine)
