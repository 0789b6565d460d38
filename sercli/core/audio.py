"""Audio I/O: soundfile to decode, torchaudio to resample. Always mono float32.

All decoding happens here: whole files (``load_audio``), lengths from headers
(``audio_length``), seeked segments of long files (``read_segment``) and a long file block by
block (``blocks``), with one set of
checks (missing, a folder, unreadable, empty, non-finite: sercli.core.guards.file_error words them).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import numpy as np

from sercli.core.errors import RecordError
from sercli.core.guards import file_error


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``; RecordError if unreadable or empty."""
    import soundfile as sf

    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # LibsndfileError (a missing file too), RuntimeError for corrupt files
        raise file_error(str(path), exc) from None
    wav = _checked(wav.mean(axis=1), path)
    if sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


def audio_length(path: str, sample_rate: int) -> int:
    """Samples ``path`` will have at ``sample_rate``, from its header alone (RecordError if
    unreadable or empty)."""
    info = _info(path)
    if info.frames <= 0:
        raise RecordError(f"audio file is empty: {path}")
    # torchaudio.functional.resample returns ceil(frames * new / orig) samples
    return -(-info.frames * sample_rate // info.samplerate)


def read_segment(path: str, sample_rate: int, start: int, stop: int, whole: bool) -> np.ndarray:
    """Mono float32 samples [start, stop) of ``path`` at ``sample_rate`` (RecordError if bad).

    ``whole``: the segment is the whole recording; take what decodes even if the header's
    length was off. A chunk of a long recording is read by seeking, so it costs only its own
    samples (plus a margin for the resampling filter when the file has another rate).
    """
    if whole:
        return load_audio(path, sample_rate)
    info = _info(path)
    try:
        if info.samplerate == sample_rate:
            wav = _read_mono(path, start, stop)
        else:
            wav = _read_resampled(path, info.samplerate, info.frames, sample_rate, start, stop)
    except Exception as exc:  # LibsndfileError, RuntimeError: unreadable after all
        raise file_error(path, exc) from None
    if len(wav) != stop - start:
        raise RecordError(f"audio {path} is shorter than its header says")
    return np.ascontiguousarray(_checked(wav, path), dtype=np.float32)


def blocks(path: str, sample_rate: int, seconds: float = 30.0) -> Iterator[np.ndarray]:
    """``path`` as consecutive mono float32 blocks of about ``seconds`` at ``sample_rate``, read
    one at a time (memory flat in the file's length; RecordError if unreadable). Each block is
    resampled alone, from a whole number of the rates' common periods, so that the blocks
    together have ``audio_length`` samples and block k starts where it would in the whole."""
    import math

    import soundfile as sf

    info = _info(path)
    period = info.samplerate // math.gcd(info.samplerate, sample_rate)
    size = max(1, round(seconds * info.samplerate / period)) * period
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                block = f.read(size, dtype="float32", always_2d=True)
                if not len(block):
                    return
                wav = _checked(block.mean(axis=1), path)
                if info.samplerate != sample_rate:
                    wav = resample(wav, info.samplerate, sample_rate)
                yield np.ascontiguousarray(wav, dtype=np.float32)
    except RecordError:
        raise
    except Exception as exc:  # LibsndfileError, RuntimeError: unreadable after all
        raise file_error(path, exc) from None


def _info(path: str):
    import soundfile as sf

    try:
        return sf.info(str(path))
    except Exception as exc:  # LibsndfileError (a missing file too), RuntimeError
        raise file_error(path, exc) from None


def _checked(wav: np.ndarray, path) -> np.ndarray:
    """``wav`` unless it is empty or holds NaN or infinity (RecordError)."""
    if wav.size == 0:
        raise RecordError(f"audio file is empty: {path}")
    if not np.isfinite(wav).all():
        raise RecordError(f"audio has NaN or infinite samples: {path}")
    return wav


def _read_mono(path: str, start: int, stop: int) -> np.ndarray:
    import soundfile as sf

    return sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)[0].mean(axis=1)


def _read_resampled(path: str, orig: int, frames: int, new: int, start: int, stop: int) -> np.ndarray:
    """Target-rate samples [start, stop) from a window of the source, resampled as
    ``resample`` resamples the whole file: the window starts on a source sample that maps to a
    whole target sample, and reaches past the segment by more than the filter's half-width
    (torchaudio's sinc kernel, lowpass_filter_width 6, rolloff 0.99)."""
    from math import ceil, gcd

    g = gcd(orig, new)
    o, n = orig // g, new // g
    margin = 2 * (ceil(6 * o / (min(o, n) * 0.99)) + o)
    s0 = max(0, (start * o // n - margin) // o * o)
    s1 = min(frames, -(-stop * o // n) + margin)
    wav = resample(_read_mono(path, s0, s1), orig, new)
    first = start - s0 // o * n
    return wav[first : first + stop - start]


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

    from sercli.core.fsutil import atomic_path

    # pid and thread in the name: engines write from several threads; a killed writer's
    # leftover is recognisable (see sercli.synthesis.synth.clean_stale_tmp)
    with atomic_path(path, fsync=False, per_thread=True) as tmp:
        sf.write(str(tmp), np.asarray(wav, dtype=np.float32), sample_rate, subtype="PCM_16", format="WAV")


def duration(path: str | Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / float(info.samplerate)
