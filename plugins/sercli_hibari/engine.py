"""The ``hibari`` TTS engine: hibari's small English voices (distilled from Kokoro-82M, onnxruntime),
emotion from tempo, pauses and loudness.

hibari has no pitch control. Its API offers a ``speed`` (the model's durations; 0.5 slow .. 2.0
fast), and it renders a text one sentence at a time, so a pause between sentences is ours to
set. The emotion table below sets, per emotion:

- ``speed``: tempo, after the espeak rules' rate (Murray & Arnott 1993): anger, happiness and
  above all fear faster, sadness, boredom and disgust slower;
- ``pause``: silence between sentences in seconds (longer for sadness, disgust, boredom);
- ``volume``: a gain after peak normalisation (sad, bored and calm speech is softer), as in
  the piper engine.

End punctuation does not help: hibari speaks "!" with the pitch of "." (on a test sentence,
median F0 190 against 187 Hz, F0 range 80 against 85 Hz), so the text is spoken as written.
``-O prosody=S`` scales the distance of each setting from neutral (0 = neutral for all).

Voices: ``heart`` (American English, female) is in the wheel; hibari downloads the others
(``emma``, ``fenrir``, ``fable``, ``kore``) on first use into its cache (``$HIBARI_HOME``, else
``~/.cache/hibari``). sercli never downloads: it offers the voices whose files are there, each
checked against hibari's registry (sha256) before it speaks.

Seeded: the model is deterministic; the noise of its vocoder comes from a numpy generator
seeded per utterance from its text, emotion, voice and ``-O seed``, so an utterance's audio
depends on nothing else (not on what was rendered before it, nor in which process).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field

from sercli.api import Options, RecordError, SercliError, TTSEngine

INSTALL = "pip install 'sercli[hibari]' (hibari-tts)"


@dataclass(frozen=True)
class Style:
    speed: float = 1.0
    pause: float = 0.2
    volume: float = 0.85


NEUTRAL = Style()
# speed: chosen so that the length follows the espeak rules' rate (175 wpm neutral: sadness 145,
# so 1.2x as long). hibari answers to speed at about half strength between 0.83 and 1.31 (1.2
# makes speech 12% shorter) and jumps outside that (0.80: 23% longer, 1.34: 31% shorter;
# measured on 5 template sentences), so fear stops at 1.3 (15% shorter, espeak's 22%).
# pause and volume: the piper engine's.
STYLES: dict[str, Style] = {
    "neutral": NEUTRAL,
    "angry": Style(speed=1.20, pause=0.12, volume=1.0),
    "happy": Style(speed=1.18, pause=0.15, volume=0.95),
    "sad": Style(speed=0.81, pause=0.45, volume=0.55),
    "fear": Style(speed=1.30, pause=0.10, volume=0.85),
    "disgust": Style(speed=0.78, pause=0.35, volume=0.70),
    "surprise": Style(speed=1.14, pause=0.15, volume=0.95),
    "calm": Style(speed=0.87, pause=0.30, volume=0.70),
    "boredom": Style(speed=0.81, pause=0.35, volume=0.65),
}
_LIMITS = {"speed": (0.5, 2.0), "pause": (0.0, 2.0), "volume": (0.05, 1.0)}


def _hibari():
    """hibari's modules (imported on first use); SercliError naming the install when absent."""
    try:
        import hibari  # noqa: F401
        from hibari import tts, voices
    except ImportError:
        raise SercliError(f"the hibari engine needs hibari-tts: {INSTALL}") from None
    return tts, voices


class HibariEngine(TTSEngine):
    name = "hibari"
    description = "hibari small neural voices (offline, English; default heart, in the wheel) with per-emotion tempo"
    max_concurrency = 1
    closed_voices = True

    class Options(Options):
        prosody: float = Field(1.0, ge=0.0, le=3.0,
                               description="scale of the emotion table: 0 = neutral for all, >1 exaggerated")
        seed: int = Field(0, description="mixed into each utterance's noise seed (another seed, other takes)")

    # --- voices -------------------------------------------------------------------------------

    def voices(self, emotion: str | None = None, language: str | None = None) -> list[str]:
        """The voices whose model files are here (``heart`` always), in hibari's order.
        SercliError when the records' language is not English."""
        if emotion is not None:
            style(emotion)
        if language and language.strip().lower().replace("_", "-").split("-")[0] != "en":
            raise SercliError(f"hibari speaks English only, the records are in {language!r}: "
                              "use --engine espeak or mbrola for them")
        _, registry = _hibari()
        return [name for name in registry.VOICES if _voice_file(name).is_file()]

    def more_voices(self) -> str:
        _, registry = _hibari()
        absent = [name for name in registry.VOICES if not _voice_file(name).is_file()]
        if not absent:
            return ""
        return (f"{', '.join(absent)} are downloaded by hibari on first use: run `hibari --voice NAME "
                f"hi -o hi.wav` once online, or copy its file into {registry.cache_dir()}")

    def voice_model(self, voice: str) -> Path:
        """The model file of ``voice``, checked against hibari's registry (one line when it is not
        there, or not the registry's file)."""
        pool = self.voices()
        if voice not in pool:
            more = self.more_voices()
            raise SercliError(f"hibari has no voice {voice!r} (voices: {', '.join(pool)}{'; ' + more if more else ''})")
        path = _voice_file(voice)
        _, registry = _hibari()
        if _sha256(path) != registry.VOICES[voice]["sha256"]:
            raise SercliError(f"hibari voice {voice!r}: {path} is not the file hibari's registry names "
                              "(sha256 differs: a partial or wrong download); delete it and fetch it again")
        return path

    def _model(self, voice: str):
        _, registry = _hibari()
        path = self.voice_model(voice)
        return _load(voice, str(path), bool(registry.VOICES[voice]["british"]))

    # --- rendering ----------------------------------------------------------------------------

    def style(self, emotion: str) -> Style:
        """The hibari settings for ``emotion`` (the table scaled by ``-O prosody``)."""
        from sercli.api import scaled_style

        return scaled_style(STYLES, emotion, self.options.prosody, _LIMITS, self.name)

    def utterance_seed(self, text: str, emotion: str, voice: str) -> int:
        from sercli.api import utterance_seed

        return utterance_seed(text, emotion, voice, self.options.seed)

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        from sercli.api import join_sentences, resample, spoken_text, write_wav

        clean = spoken_text(text)
        st = self.style(emotion)
        model = self._model(voice)
        try:
            chunks = [c for c in model.stream(clean, st.speed, self.utterance_seed(clean, emotion, voice)) if c.size]
        except Exception as exc:  # the G2P or the model refusing this text: this record only
            raise RecordError(f"hibari could not speak {clean[:40]!r}: {exc}".splitlines()[0]) from None
        if not chunks:
            raise RecordError(f"hibari produced no audio for {clean[:40]!r}")
        wav = resample(join_sentences(chunks, st.pause, model.sample_rate), model.sample_rate, self.sample_rate)
        peak = float(np.max(np.abs(wav))) if wav.size else 0.0
        if not np.isfinite(peak) or peak < 1e-4:
            raise RecordError(f"hibari produced no audio for {clean[:40]!r}")
        write_wav(path, np.clip(wav * (st.volume / peak), -1.0, 1.0), self.sample_rate)

    # --- identity -----------------------------------------------------------------------------

    def provenance(self) -> dict:
        return {**super().provenance(), **_versions()}

    def identity(self) -> dict:
        """What decides the audio besides text, emotion and voice: the emotion table and scale, the
        seed, the hibari-tts and onnxruntime versions. A voice's model is its registry file in that
        hibari-tts (checked by sha256 before it speaks), so the version pins it."""
        return {
            "plugin": self.name,
            "prosody": self.options.prosody,
            "seed": self.options.seed,
            "table": zlib.crc32(repr(sorted(STYLES.items())).encode()),
            **_versions(),
        }


def style(emotion: str) -> Style:
    """The table's settings for ``emotion``; SercliError for an emotion it has none for."""
    from sercli.api import scaled_style

    return scaled_style(STYLES, emotion, 1.0, {}, "hibari")


@lru_cache(maxsize=None)
def _load(voice: str, path: str, british: bool):
    """A hibari voice, loaded once per process: it keeps no state between calls (each call gets
    its own noise generator), so every engine may share it; voices of one accent share a G2P."""
    tts, _ = _hibari()
    try:
        return tts.Hibari(voice=voice, model=path, threads=1, g2p=_g2p(british))
    except Exception as exc:
        raise SercliError(f"hibari could not load voice {voice!r} ({path}): {exc}".splitlines()[0]) from None


@lru_cache(maxsize=None)
def _g2p(british: bool):
    _hibari()
    from hibari.g2p import G2P

    return G2P(british=british)


def _voice_file(name: str) -> Path:
    """Where hibari keeps ``name``'s model: in the package, or in its cache (``$HIBARI_HOME``)."""
    tts, registry = _hibari()
    entry = registry.VOICES[name]
    if entry.get("bundled"):
        return Path(tts.ASSETS) / entry["file"]
    return Path(registry.cache_dir()) / entry["file"]


def _versions() -> dict:
    from sercli.api import package_versions

    return package_versions(("hibari-tts", "onnxruntime"), "hibari", INSTALL)


@lru_cache(maxsize=None)
def _sha256_of(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    st = os.stat(path)
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)
