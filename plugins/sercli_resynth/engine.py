"""The ``resynth`` engine: recorded utterances remade as new speakers with WORLD.

Each utterance is analysed with WORLD (``harvest`` for F0, ``cheaptrick`` for the spectral
envelope, ``d4c`` for aperiodicity) and synthesised again with a voice's changes:

* pitch: F0 times the voice's pitch factor (default 0.8-1.25);
* vocal tract: the spectral envelope warped along frequency by the voice's warp factor
  (default 0.9-1.1; above 1 the formants move up, as for a shorter vocal tract);
* tempo: frames taken at the voice's tempo factor (default 0.9-1.1; above 1 is faster), pitch
  and spectrum kept;
* pitch range: log F0 around its median scaled by the voice's range factor (default 1, off)
  and, with ``prosody`` > 0, by an emotion-congruent factor (wider for angry, happy, fear,
  surprise; narrower for sad, calm, boredom), ``rule ** prosody``.

A voice is ``v0`` ... ``v{N-1}`` (``n_voices``); its factors are drawn, log-uniformly within the
ranges, from ``voice_seed`` and the voice's name only, so ``v3`` is the same voice in every run
with the same options, whatever else the pool holds. The emotion label is the source's.
Rendering is deterministic: the same source, voice and options give the same samples.
"""

from __future__ import annotations

import math
import os
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from sercli.api import Options, RecordError, SercliError, TTSEngine

FRAME_MS = 5.0
INSTALL = "the resynth engine needs WORLD: pip install pyworld-prebuilt (or: pip install 'sercli[resynth]')"

# Pitch-range factors by emotion (the spread of log F0 around its median), after the direction
# of the pitch-range changes in Murray & Arnott (1993) and Banse & Scherer (1996): wider for
# high-arousal emotions, narrower for sadness and boredom. Applied as rule ** prosody.
RANGE_RULES: dict[str, float] = {
    "neutral": 1.0, "angry": 1.3, "happy": 1.3, "surprise": 1.4, "fear": 1.2, "disgust": 1.1,
    "sad": 0.75, "calm": 0.85, "boredom": 0.65,
}


# the widest range each factor option accepts
_LIMITS = {"pitch": (0.25, 4.0), "warp": (0.5, 2.0), "tempo": (0.25, 4.0), "pitch_range": (0.0, 4.0)}


def _range(value: Any, name: str, low: float, high: float) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        parts = [float(v) for v in value]
    else:
        text = str(value).strip()
        try:
            parts = [float(text)] if ":" not in text else [float(p) for p in text.split(":")]
        except ValueError:
            raise ValueError(f"expected LOW:HIGH (e.g. {low}:{high}) or one number, got {value!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not parts[0] <= parts[1]:
        raise ValueError(f"expected LOW:HIGH with LOW <= HIGH, got {value!r}")
    if parts[0] < low or parts[1] > high:
        raise ValueError(f"{name} factors must lie within {low}:{high}, got {value!r}")
    return parts[0], parts[1]


class ResynthEngine(TTSEngine):
    name = "resynth"
    description = "new speakers from recorded speech (WORLD: pitch, vocal-tract warp, tempo); reads audio records"
    reads = "audio"
    closed_voices = True
    max_concurrency = max(1, min(4, os.cpu_count() or 1))  # WORLD releases the GIL; utterances are independent

    class Options(Options):
        n_voices: int = Field(8, ge=1, le=1000, description="voices in the pool: v0 ... v{n_voices-1}")
        voice_seed: int = Field(0, description="seed of the voices' factors (with each voice's name)")
        pitch: tuple[float, float] = Field((0.8, 1.25), description="range of the voices' F0 factors, LOW:HIGH")
        warp: tuple[float, float] = Field(
            (0.9, 1.1), description="range of the voices' spectral-envelope warp (vocal-tract length) factors, LOW:HIGH")
        tempo: tuple[float, float] = Field((0.9, 1.1), description="range of the voices' tempo factors (>1 faster), LOW:HIGH")
        pitch_range: tuple[float, float] = Field(
            (1.0, 1.0), description="range of the voices' pitch-range factors (spread of log F0), LOW:HIGH")
        prosody: float = Field(
            0.0, ge=0.0, le=3.0,
            description="emotion-congruent pitch range: 0 = the source's own, 1 = the rules, >1 exaggerated")
        f0: str = Field("harvest", description="F0 tracker: harvest (robust) or dio (about 10x faster)")

        @field_validator("pitch", "warp", "tempo", "pitch_range", mode="before")
        @classmethod
        def _ranges(cls, v, info):
            return _range(v, info.field_name, *_LIMITS[info.field_name])

        @field_validator("f0")
        @classmethod
        def _f0(cls, v):
            if v not in ("harvest", "dio"):
                raise ValueError(f"expected harvest or dio, got {v!r}")
            return v

    def __init__(self, name: str | None = None, options=None):
        super().__init__(name, options)
        _pyworld()  # without WORLD, one line saying what to install, before any file is made

    def voices(self, emotion: str | None = None) -> list[str]:
        return [f"v{i}" for i in range(self.options.n_voices)]

    def factors(self, voice: str) -> dict[str, float]:
        """The changes ``voice`` makes: pitch, warp, tempo and pitch_range factors (drawn from
        ``voice_seed`` and the voice's name; log-uniform within each option's range)."""
        if voice not in self.voices():
            raise SercliError(f"resynth has no voice {voice!r} (voices: v0 ... v{self.options.n_voices - 1}; "
                              "more with -O n_voices=N)")
        rng = random.Random(zlib.crc32(f"{self.options.voice_seed}\n{voice}".encode()))
        o = self.options
        return {name: round(math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo > 0 else rng.uniform(lo, hi), 6)
                for name, (lo, hi) in (("pitch", o.pitch), ("warp", o.warp), ("tempo", o.tempo),
                                       ("pitch_range", o.pitch_range))}

    def resynthesize(self, source: dict[str, Any], voice: str, path: Path) -> None:
        from sercli.api import load_audio, write_wav

        pw = _pyworld()
        f = self.factors(voice)
        rule = RANGE_RULES.get(source.get("emotion") or "", 1.0) ** self.options.prosody
        x = load_audio(source["audio"], self.sample_rate).astype(np.float64)
        if len(x) < self.sample_rate * 0.05 or not np.any(x):
            raise RecordError("audio too short or silent to resynthesise (under 50 ms, or all zeros)")
        y = remake(pw, x, self.sample_rate, pitch=f["pitch"], warp=f["warp"], tempo=f["tempo"],
                   pitch_range=f["pitch_range"] * rule, f0_method=self.options.f0)
        # the source's loudness, clipped to full scale
        gain = np.sqrt(np.mean(x ** 2)) / max(np.sqrt(np.mean(y ** 2)), 1e-9)
        write_wav(path, np.clip(y * gain, -1.0, 1.0).astype(np.float32), self.sample_rate)

    def provenance(self) -> dict:
        return {**super().provenance(), "pyworld": _pyworld_version()}

    def identity(self) -> dict:
        """What decides the audio besides the source audio, emotion and voice: every option but
        ``n_voices`` (a voice's factors do not depend on the pool's size), the rules, WORLD's version."""
        o = self.options.model_dump(mode="json")
        o.pop("n_voices")
        if not self.options.prosody:
            o.pop("prosody")
        return {"plugin": self.name, **o, "frame_ms": FRAME_MS, "method": 1,
                **({"rules": zlib.crc32(repr(sorted(RANGE_RULES.items())).encode())} if self.options.prosody else {}),
                "pyworld": _pyworld_version()}


def remake(pw, x: np.ndarray, sr: int, *, pitch: float, warp: float, tempo: float, pitch_range: float = 1.0,
           f0_method: str = "harvest") -> np.ndarray:
    """``x`` (float64 mono) analysed with WORLD and synthesised with F0 times ``pitch`` (its
    log spread around the median times ``pitch_range``), the spectral envelope warped by
    ``warp`` along frequency and the frames read at ``tempo``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if f0_method == "dio":
        f0, t = pw.dio(x, sr, frame_period=FRAME_MS)
        f0 = pw.stonemask(x, f0, t, sr)
    else:
        f0, t = pw.harvest(x, sr, frame_period=FRAME_MS)
    sp = pw.cheaptrick(x, f0, t, sr)
    ap = pw.d4c(x, f0, t, sr)

    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        centre = np.median(log_f0)
        f0 = f0.copy()
        f0[voiced] = np.exp(centre + pitch_range * (log_f0 - centre) + math.log(pitch))
        f0[voiced] = np.clip(f0[voiced], 40.0, sr / 4)
    if warp != 1.0:
        sp = warp_envelope(sp, warp)
    if tempo != 1.0:
        frames = len(f0)
        n = max(1, int(round(frames / tempo)))
        idx = np.minimum(np.round(np.arange(n) * tempo).astype(int), frames - 1)
        f0, sp, ap = f0[idx], sp[idx], ap[idx]
    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap), sr, FRAME_MS)
    return np.nan_to_num(y)


def warp_envelope(sp: np.ndarray, warp: float) -> np.ndarray:
    """The envelope moved along frequency: the new envelope at f is the old one at f / ``warp``
    (linear interpolation between bins; the top bin held beyond the old band)."""
    bins = sp.shape[1]
    pos = np.minimum(np.arange(bins) / warp, bins - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    w = pos - lo
    out = sp[:, lo] * (1 - w) + sp[:, hi] * w
    return np.ascontiguousarray(np.maximum(out, 1e-16))


def _pyworld():
    try:
        import pyworld
    except ImportError:
        raise SercliError(INSTALL) from None
    return pyworld


def _pyworld_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("pyworld-prebuilt", "pyworld"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    raise SercliError(INSTALL)
