"""New speakers made from recorded speech: WORLD analysis and resynthesis (pyworld-prebuilt)."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_tts_engines(register):
    from sercli_resynth.engine import ResynthEngine  # pyworld is imported on first use

    register(ResynthEngine)
