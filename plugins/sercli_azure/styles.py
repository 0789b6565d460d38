"""Which Azure voice can speak which style, and which styles express which emotion.

Azure silently ignores a style a voice does not support and speaks neutrally, which would
put neutral audio under an emotional label. So every (voice, style) pair is checked against
``VOICE_STYLES`` before a request is made.

``VOICE_STYLES`` is Microsoft's "Voice styles and roles" table for the English voices
(learn.microsoft.com/azure/ai-services/speech-service/language-support?tabs=tts#voice-styles-and-roles,
MicrosoftDocs/azure-ai-docs, include file voice-styles-and-roles.md, dated 2026-04-02). The
live list is also available from the service (SpeechSynthesizer.get_voices_async, property
``StyleList``); voices missing here are treated as supporting no style.
"""

from __future__ import annotations

from dataclasses import dataclass

from sercli.api import emotion_key

_CLASSIC = ("angry", "cheerful", "excited", "friendly", "hopeful", "sad", "shouting", "terrified",
            "unfriendly", "whispering")
_MAI2 = ("angry", "confused", "determined", "disgusted", "embarrassed", "excited", "fearful", "happy",
         "hopeful", "jealous", "joyful", "regretful", "relieved", "sad", "shouting", "softvoice",
         "surprised", "whispering")

VOICE_STYLES: dict[str, frozenset[str]] = {
    name: frozenset(styles)
    for name, styles in {
        "en-US-AriaNeural": _CLASSIC + ("chat", "customerservice", "empathetic",
                                        "narration-professional", "newscast-casual", "newscast-formal"),
        "en-US-DavisNeural": _CLASSIC + ("chat",),
        "en-US-GuyNeural": _CLASSIC + ("newscast",),
        "en-US-JaneNeural": _CLASSIC,
        "en-US-JasonNeural": _CLASSIC,
        "en-US-JennyNeural": _CLASSIC + ("assistant", "chat", "customerservice", "newscast"),
        "en-US-NancyNeural": _CLASSIC,
        "en-US-SaraNeural": _CLASSIC,
        "en-US-TonyNeural": _CLASSIC,
        "en-US-AvaNeural": ("angry", "fearful", "sad"),
        "en-US-AndrewMultilingualNeural": ("empathetic", "relieved"),
        "en-US-DavisMultilingualNeural": ("empathetic", "funny", "relieved"),
        "en-US-NancyMultilingualNeural": ("excited", "friendly", "funny", "relieved", "shy"),
        "en-US-SerenaMultilingualNeural": ("empathetic", "excited", "friendly", "relieved", "sad",
                                           "serious", "shy"),
        "en-US-Ethan:MAI-Voice-2": _MAI2,
        "en-US-Olivia:MAI-Voice-2": _MAI2,
        "en-AU-Isla:MAI-Voice-2": _MAI2,
        "en-GB-RyanNeural": ("chat", "cheerful", "sad", "whispering"),
        "en-GB-SoniaNeural": ("cheerful", "sad"),
        "en-IN-NeerjaNeural": ("cheerful", "empathetic", "newscast"),
    }.items()
}

# Nine US English voices (five female, four male) that share the same ten emotional styles.
DEFAULT_VOICES = (
    "en-US-JennyNeural", "en-US-GuyNeural", "en-US-AriaNeural", "en-US-DavisNeural",
    "en-US-JaneNeural", "en-US-JasonNeural", "en-US-SaraNeural", "en-US-TonyNeural",
    "en-US-NancyNeural",
)


@dataclass(frozen=True)
class Expression:
    """How an emotion is spoken: ``styles`` express it (the first one the voice supports is
    used); ``fallback`` styles are only near it, used with a warning when remapping is allowed.
    No styles at all (neutral) means the voice's plain delivery."""

    styles: tuple[str, ...] = ()
    degree: float = 1.0
    fallback: tuple[str, ...] = ()


EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "angry": Expression(("angry",), 1.5, ("unfriendly", "shouting")),
    "happy": Expression(("cheerful", "happy", "joyful"), 1.5, ("excited", "friendly")),
    "sad": Expression(("sad",), 1.5, ("regretful", "empathetic")),
    "fear": Expression(("terrified", "fearful"), 1.5),
    "disgust": Expression(("disgusted", "disgruntled"), 1.5, ("unfriendly",)),
    "surprise": Expression(("surprised",), 1.5, ("excited",)),
    "excited": Expression(("excited",), 1.5, ("cheerful",)),
    "calm": Expression(("calm",), 1.0, ("friendly",)),
}
# An emotion's spellings (anger, joy, ps...) are sercli's (sercli.core.labels.SYNONYMS).
canonical = emotion_key


def parse_overrides(text: str) -> dict[str, Expression]:
    """``"angry:angry@2,boredom:unfriendly,neutral:"`` -> per-emotion Expression overrides."""
    out: dict[str, Expression] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        emotion, sep, rest = item.partition(":")
        if not sep or not emotion.strip():
            raise ValueError(f"{item!r}: expected EMOTION:STYLE[@DEGREE]")
        style, _, degree = rest.partition("@")
        try:
            value = float(degree) if degree else 1.0
        except ValueError:
            raise ValueError(f"{item!r}: degree {degree!r} is not a number") from None
        if not 0.01 <= value <= 2:
            raise ValueError(f"{item!r}: Azure accepts a style degree from 0.01 to 2")
        out[canonical(emotion)] = Expression((style.strip(),) if style.strip() else (), value)
    return out
