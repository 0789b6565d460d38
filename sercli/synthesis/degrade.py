"""`sercli degrade`: recorded-speech conditions for clean synthetic audio (torchaudio).

Formant speech from a TTS engine is cleaner than any recording, and a model trained on it
learns that cleanliness. This stage puts it through a room, a channel and a microphone:

    reverberation  a synthetic room impulse response: exponentially decaying Gaussian noise
                   whose energy falls by 60 dB in ``reverb`` seconds (RT60), after the direct
                   sound, convolved with the audio (torchaudio.functional.fftconvolve)
    band limits    a band-pass of ``band`` = (low, high) Hz, e.g. 300-3400 (telephone):
                   two high-pass and two low-pass biquads (torchaudio.functional)
    noise          white Gaussian noise at ``snr`` dB against the (reverberant, band-limited)
                   speech (torchaudio.functional.add_noise), so the SNR is the one asked for

in that order. Each utterance draws its randomness from the seed and its record id, so a
re-run, or a resumed run, makes the same files. Files are named by record id and a hash of
the settings, the seed and the source audio's path and size: new settings make new files.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sercli.core.errors import RecordError, SercliError
from sercli.core.fsutil import safe_name
from sercli.core.log import info, progress, warn
from sercli.core.records import open_writer, output_lock, read_existing

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Degradation:
    snr: float | None = None  # dB of speech over noise; None: no noise
    reverb: float = 0.0  # RT60 in seconds; 0: none
    band: tuple[float, float] | None = None  # (low, high) Hz; None: full band
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reverb < 0 or self.reverb > 5:
            raise SercliError(f"--reverb {self.reverb}: expected an RT60 in seconds, 0 to 5")
        if self.band is not None:
            low, high = self.band
            if not 0 <= low < high <= SAMPLE_RATE / 2:
                raise SercliError(f"--band {low:g}-{high:g}: expected LOW-HIGH in Hz, 0 <= LOW < HIGH <= {SAMPLE_RATE // 2}")
        if self.snr is None and not self.reverb and self.band is None:
            raise SercliError("nothing to do: give --snr, --reverb and/or --band")

    def settings(self) -> dict[str, Any]:
        return {**asdict(self), "band": list(self.band) if self.band else None}


def parse_band(text: str | None) -> tuple[float, float] | None:
    """``"300-3400"`` -> (300.0, 3400.0)."""
    if not text:
        return None
    low, sep, high = text.partition("-")
    try:
        return float(low), float(high)
    except ValueError:
        raise SercliError(f"--band {text!r}: expected LOW-HIGH in Hz, e.g. 300-3400") from None


def rng_for(seed: int, rec_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(str(rec_id).encode("utf-8"))])


def room_impulse(rt60: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic RIR: the direct sound (1), then Gaussian noise decaying by 60 dB in ``rt60``
    seconds, scaled so the reverberant tail holds as much energy as the direct sound."""
    n = max(int(rt60 * sr), 1)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000) = 6.9078: -60 dB at rt60
    tail[0] = 0.0
    tail /= np.sqrt(np.sum(tail**2)) + 1e-12
    rir = tail
    rir[0] = 1.0
    return rir.astype(np.float32)


def apply(wav: np.ndarray, d: Degradation, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``wav`` (mono float32) reverberated, band-limited and noised as ``d`` says."""
    import torch
    import torchaudio.functional as F

    x = torch.from_numpy(np.asarray(wav, dtype=np.float32))
    peak = float(x.abs().max()) or 1.0
    if d.reverb > 0:
        rir = torch.from_numpy(room_impulse(d.reverb, rng, sr))
        x = F.fftconvolve(x, rir)[: len(x)]
    if d.band is not None:
        low, high = d.band
        for _ in range(2):  # 24 dB/octave skirts
            if low > 0:
                x = F.highpass_biquad(x, sr, low)
            if high < sr / 2:
                x = F.lowpass_biquad(x, sr, high)
    if d.snr is not None:
        noise = torch.from_numpy(rng.standard_normal(len(x)).astype(np.float32))
        x = F.add_noise(x[None], noise[None], torch.tensor([float(d.snr)]))[0]
    x = x * (peak / max(float(x.abs().max()), 1e-9))  # the source's peak level, never clipped
    return x.numpy().astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10 log10 of the power of ``clean`` over that of ``noisy - clean``."""
    noise = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    return float(10 * np.log10(np.sum(np.asarray(clean, np.float64) ** 2) / max(np.sum(noise**2), 1e-20)))


def key_of(d: Degradation, audio: str) -> str:
    try:
        size = Path(audio).stat().st_size
    except OSError:
        size = -1
    blob = json.dumps({"degrade": d.settings(), "audio": str(audio), "size": size}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run(records: list[dict[str, Any]], d: Degradation, audio_dir: Path, output: str | None, suffix: str) -> None:
    """Degrade each record's audio into ``audio_dir``; write one record per utterance to
    ``output`` (resuming what it holds: records there are not made again)."""
    from sercli.core.audio import load_audio, write_wav
    from sercli.synthesis.synth import audio_lock

    settings = d.settings()
    failed = 0
    with output_lock(output), audio_lock(audio_dir):
        existing = read_existing(output)
        done = {r.get("id"): r for r in existing}
        for r in existing:
            made = ((r.get("provenance") or {}).get("degrade") or {}).get("settings")
            if made is not None and made != settings:
                raise SercliError(f"{output} already holds {r.get('id')!r} degraded with other settings "
                                  f"({json.dumps(made, sort_keys=True)}); write to another -o file")
        todo = [r for r in records if f"{r['id']}{suffix}" not in done]
        if done:
            info(f"Resuming: {len(done)} records already in {output}")
        with open_writer(output, append=True) as out, progress() as bar:
            task = bar.add_task("degrade", total=len(todo))
            for rec in todo:
                bar.advance(task)
                audio = str(rec["audio"])
                path = audio_dir / f"{safe_name(str(rec['id']) + suffix)}.{key_of(d, audio)}.wav"
                try:
                    clean = load_audio(audio, SAMPLE_RATE)
                    if not path.exists():
                        write_wav(path, apply(clean, d, rng_for(d.seed, rec["id"])), SAMPLE_RATE)
                except RecordError as exc:
                    failed += 1
                    warn(f"{rec['id']}: {exc}")
                    continue
                out.write(_record(rec, path, suffix, settings, len(clean)))
    if failed:
        raise SercliError(f"{failed} of {len(todo)} utterances failed (see warnings above); re-run to retry")


def _record(rec: dict[str, Any], path: Path, suffix: str, settings: dict[str, Any], n: int) -> dict[str, Any]:
    new = {k: v for k, v in rec.items() if k != "features"}  # features of the clean audio no longer apply
    new.update(id=f"{rec['id']}{suffix}", audio=str(path.resolve()), duration=round(n / SAMPLE_RATE, 4))
    new["provenance"] = {**(rec.get("provenance") or {}),
                         "degrade": {"settings": settings, "from": rec["id"], "from_audio": str(rec["audio"])}}
    return new
