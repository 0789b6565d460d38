"""Offline emotional TTS with espeak-ng: the ``espeak`` engine (formant voices, the library
shipped in the espeakng-loader wheel) and the ``mbrola`` engine (MBROLA diphone voices through
the system's espeak-ng and mbrola programs). Both use the prosody rules of ``engine.PROSODY``."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_tts_engines(register):
    from sercli_espeak.engine import EspeakEngine  # ctypes loading happens on first use
    from sercli_espeak.mbrola import MbrolaEngine  # the system programs are looked up on first use

    register(EspeakEngine)
    register(MbrolaEngine)
