"""Quality gates for synthetic speech (`sercli filter -g NAME`): ``asr`` (a Whisper round trip:
word error rate against the text) and ``emotion`` (a run trained on real speech recognises the
intended emotion)."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_gates(register):
    from sercli_gates.asr import AsrGate  # no torch or transformers until a gate runs
    from sercli_gates.emotion import EmotionGate

    register(AsrGate)
    register(EmotionGate)
