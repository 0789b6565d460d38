"""Audio I/O: soundfile to decode, torchaudio to resample. Always mono float32."""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import numpy as np

from sercli.errors import RecordError


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``; RecordError if unreadable or empty."""
    import soundfile as sf

    # soundfile reports a missing file as "Error opening ...: System error", so look first.
    if not os.path.exists(path):
        raise RecordError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise RecordError(f"audio path is a folder, not a file: {path}")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:  # removed in between
        raise RecordError(f"audio file not found: {path}") from None
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError for corrupt files
        raise RecordError(f"cannot decode audio {path}: {exc}") from None
    wav = wav.mean(axis=1)
    if wav.size == 0:
        raise RecordError(f"audio file is empty: {path}")
    if not np.isfinite(wav).all():
        raise RecordError(f"audio has NaN or infinite samples: {path}")
    if sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


def resample(wav: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = _resampler(orig_sr, new_sr)(torch.from_numpy(np.asarray(wav, dtype=np.float32)))
    return out.numpy()


@functools.lru_cache(maxsize=8)
def _resampler(orig_sr: int, new_sr: int):
    """The windowed-sinc kernel is built once per rate pair, not once per file."""
    import torchaudio

    return torchaudio.transforms.Resample(orig_sr, new_sr)


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV atomically (a killed run never leaves a half file)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # pid and thread in the name: engines write from several threads; a killed writer's
    # leftover is recognisable (see sercli.synth.clean_stale_tmp)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        sf.write(str(tmp), np.asarray(wav, dtype=np.float32), sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def duration(path: str | Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / float(info.samplerate)
