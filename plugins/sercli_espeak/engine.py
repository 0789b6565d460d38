"""The ``espeak`` TTS engine: espeak-ng voices with per-emotion prosody rules."""

from __future__ import annotations

import random
import re
import zlib
from pathlib import Path

import numpy as np
from pydantic import Field

from sercli.api import Options, RecordError, SercliError, TTSEngine
from sercli_espeak.library import LOCK, Prosody, espeak, voice_languages

NEUTRAL = Prosody()

# Prosody rules after Murray & Arnott (1993, JASA 93(2)) relative to neutral speech:
#   anger: slightly faster, very much higher pitch, much wider range, louder;
#   happiness: faster, much higher pitch, much wider range, louder;
#   sadness: slightly slower, slightly lower, narrower range, softer (plus longer pauses);
#   fear: much faster, very much higher pitch, wider range, normal loudness;
#   disgust: very much slower, very much lower pitch, slightly wider range, softer.
# Surprise (high, very wide, slightly fast) follows Cahn (1990); boredom (slow, low, flat, soft)
# follows Burkhardt & Sendlmeier (2000); calm is a softened, slightly slower neutral.
PROSODY: dict[str, Prosody] = {
    "neutral": NEUTRAL,
    "angry": Prosody(rate=195, pitch=65, range=85, volume=130),
    "happy": Prosody(rate=190, pitch=68, range=80, volume=115),
    "sad": Prosody(rate=145, pitch=38, range=25, volume=75, wordgap=2),
    "fear": Prosody(rate=225, pitch=75, range=75, volume=100),
    "disgust": Prosody(rate=135, pitch=32, range=60, volume=85, wordgap=1),
    "surprise": Prosody(rate=185, pitch=72, range=95, volume=115),
    "calm": Prosody(rate=160, pitch=45, range=40, volume=85, wordgap=1),
    "boredom": Prosody(rate=145, pitch=38, range=12, volume=85, wordgap=1),
}

# Accent (espeak-ng language voice) + voice variant from espeak-ng-data/voices/!v;
# six female (f*) and six male (no variant or m*) speakers.
DEFAULT_VOICES = [
    "en-us", "en-us+f2", "en-us+f3", "en-us+m3",
    "en-us-nyc+f4", "en-gb-x-rp", "en-gb-x-rp+f1", "en-gb-scotland+m2",
    "en-gb-scotland+f5", "en+m7", "en-029+f3", "en-gb-x-gbclan+m6",
]

# For another language: its accents (espeak-ng voice files) in turn, each with one of these
# variants, six female and six male, so a pool has 12 voices as the English one does.
VARIANTS = ["", "+f2", "+f3", "+m3", "+f4", "+m2", "+f1", "+m7", "+f5", "+m6", "+m1", "+m4"]
POOL_SIZE = 12

_LIMITS = {"rate": (80, 450), "pitch": (0, 100), "range": (0, 100), "volume": (0, 200), "wordgap": (0, 50)}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class ProsodyOptions(Options):
    """The emotional prosody options of the engines that use these rules (espeak, mbrola)."""

    prosody: float = Field(
        1.0, ge=0.0, le=3.0,
        description="scale of the emotional prosody: 0 = neutral for all, 1 = rules, >1 exaggerated",
    )
    voice_variation: bool = Field(True, description="small fixed prosody offsets per voice")
    prosody_jitter: float = Field(
        0.0, ge=0.0, le=1.0,
        description="per-utterance random prosody (seeded by text, emotion and voice): rate and range vary by "
                    "up to this share, pitch by up to 20x this (0.2 = rate +-20%, pitch +-4, range +-20%)",
    )


class EspeakEngine(TTSEngine):
    name = "espeak"
    description = "espeak-ng (offline, formant synthesis) with per-emotion prosody rules"
    max_concurrency = 1  # the library is process-global and not thread-safe

    class Options(ProsodyOptions):
        voices: str = Field("", description="comma-separated espeak-ng voices (default: 12 English voices)")

    def voices(self, emotion: str | None = None, language: str | None = None) -> list[str]:
        """The pool for ``emotion`` (every voice when None): the ``voices`` option, else the 12
        English voices, or for ``language`` (a BCP-47 code of the records: de, it, fr-be) voices
        of that language. SercliError when espeak-ng has none."""
        if emotion is not None:
            self._rules(emotion)
        chosen = [v.strip() for v in self.options.voices.split(",") if v.strip()]
        if chosen:
            return chosen
        if language is None:
            return list(DEFAULT_VOICES)
        return language_pool(language)

    def prosody(self, emotion: str, voice: str, text: str | None = None) -> Prosody:
        """The espeak-ng parameters used for ``emotion`` spoken by ``voice`` (for ``text``: with
        its own draw of ``prosody_jitter``, the same draw each time)."""
        return emotion_prosody(emotion, voice, text, self.options.prosody, self.options.voice_variation,
                               self.options.prosody_jitter, self.name)

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        from sercli.api import resample, write_wav

        clean = " ".join(_CONTROL.sub(" ", text).split())
        if not clean:
            raise RecordError("cannot synthesise empty text")
        prosody = self.prosody(emotion, voice, clean)
        with LOCK:
            engine = espeak()
            samples, rate = engine.synth(clean, voice, prosody), engine.sample_rate
        wav = resample(samples.astype("float32") / 32768.0, rate, self.sample_rate)
        # Loud prosody (volume > 100) can reach full scale; resampling may overshoot it.
        write_wav(path, np.clip(wav, -1.0, 1.0), self.sample_rate)

    def provenance(self) -> dict:
        from importlib.metadata import version

        return {**super().provenance(), "espeakng_loader": version("espeakng-loader")}

    def identity(self) -> dict:
        """What decides the audio of an utterance besides its text, emotion and voice (the key
        of cached audio): not the voice pool, but the prosody rules and the library version."""
        from importlib.metadata import version

        return {
            "plugin": self.name,
            "prosody": self.options.prosody,
            "voice_variation": self.options.voice_variation,
            **({"prosody_jitter": self.options.prosody_jitter} if self.options.prosody_jitter else {}),
            "rules": rules_digest(),
            "espeakng_loader": version("espeakng-loader"),
        }

    def _rules(self, emotion: str) -> Prosody:
        return rules(emotion, self.name)


def rules(emotion: str, engine: str = "espeak") -> Prosody:
    """The prosody rules for ``emotion``; SercliError (naming ``engine``) when there are none."""
    if emotion not in PROSODY:
        raise SercliError(f"{engine} has no prosody rules for emotion {emotion!r}. Known: {', '.join(PROSODY)}")
    return PROSODY[emotion]


def rules_digest() -> int:
    """A checksum of the rule table (part of an engine's identity: new rules, new audio)."""
    return zlib.crc32(repr(sorted(PROSODY.items())).encode())


def emotion_prosody(emotion: str, voice: str, text: str | None = None, scale: float = 1.0,
                    voice_variation: bool = True, jitter: float = 0.0, engine: str = "espeak") -> Prosody:
    """espeak-ng parameters for ``emotion`` spoken by ``voice``: the rules scaled by ``scale``
    (0 = neutral), with the voice's own fixed offsets (``voice_variation``) and, for ``text``, a
    draw of up to ``jitter`` seeded by text, emotion and voice. Shared by the espeak and mbrola
    engines (both drive espeak-ng's prosody)."""
    target = rules(emotion, engine)
    values = {k: getattr(NEUTRAL, k) + scale * (getattr(target, k) - getattr(NEUTRAL, k)) for k in _LIMITS}
    if voice_variation:
        # Seeded by the voice name, so a voice keeps its own habits across runs and emotions.
        rng = random.Random(zlib.crc32(voice.encode()))
        values["rate"] *= 1 + rng.uniform(-0.06, 0.06)
        values["pitch"] += rng.uniform(-5, 5)
        values["range"] += rng.uniform(-6, 6)
    if jitter and text is not None:
        rng = random.Random(zlib.crc32(f"{text}\n{emotion}\n{voice}".encode()))
        values["rate"] *= 1 + rng.uniform(-jitter, jitter)
        values["pitch"] += 20 * rng.uniform(-jitter, jitter)
        values["range"] *= 1 + rng.uniform(-jitter, jitter)
    clipped = {k: int(round(min(max(v, _LIMITS[k][0]), _LIMITS[k][1]))) for k, v in values.items()}
    return Prosody(**clipped)


def speaks(codes: tuple[str, ...], language: str) -> bool:
    """A voice speaking ``codes`` speaks ``language``: the same code, or a regional form of it
    (``fr-be`` speaks ``fr``)."""
    return any(code == language or code.startswith(language + "-") for code in codes)


def language_pool(language: str) -> list[str]:
    """Voices for records in ``language``: English gets the 12 default voices (those of its
    region for ``en-gb``); another language its accents, each with voice variants."""
    lang = language.strip().lower().replace("_", "-")
    table = voice_languages()
    if lang.split("-")[0] == "en":
        pool = [v for v in DEFAULT_VOICES if speaks(table.get(v.split("+")[0], ()), lang)]
        if pool:
            return pool
    accents = [name for name, codes in table.items() if speaks(codes, lang)]
    if not accents and "-" in lang:  # de-at: no Austrian voice, the German one speaks it
        accents = [name for name, codes in table.items() if speaks(codes, lang.split("-")[0])]
    if not accents:
        known = sorted({c.split("-")[0] for codes in table.values() for c in codes})
        raise SercliError(
            f"espeak-ng has no voice for language {language!r} (it speaks: {', '.join(known)})"
        )
    # the accent named exactly like the language first (fr before fr-be)
    accents.sort(key=lambda name: (name != lang, name))
    pool = [accents[i % len(accents)] + VARIANTS[i % len(VARIANTS)] for i in range(POOL_SIZE)]
    return list(dict.fromkeys(pool))
