"""Per-record guards of feature extraction (used by sercli.features.extract and sercli.core.audio).

One record's trouble is that record's RecordError, with a reason a user can act on, and never
the end of the run: a file that is missing or cannot be decoded, a clip too short for the
backbone, a backbone that raises on one input of a batch (the batch is run again one input at
a time, so only the bad record is skipped), and features that are not finite numbers, from the
backbone or from the cast to the store's precision (float16 tops out at 65504). Nothing
non-finite is ever stored. And a head whose weights are not finite (trained on NaN features by
an older sercli) is refused before it predicts anything (``check_weights``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sercli.core.errors import RecordError, SercliError



def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (torch and libraries write several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, RecordError) and type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def file_error(path: str, exc: BaseException) -> RecordError:
    """Why ``path`` could not be read, in words: soundfile reports a missing file as 'System
    error', not FileNotFoundError, so look at the file system first."""
    p = Path(path)
    if not p.exists():
        return RecordError(f"audio file not found: {path}")
    if p.is_dir():
        return RecordError(f"audio path is a folder, not a file: {path}")
    if not os.access(p, os.R_OK):
        return RecordError(f"audio file is not readable (permission denied): {path}")
    if p.stat().st_size == 0:
        return RecordError(f"audio file is empty: {path}")
    return RecordError(f"cannot decode audio {path}: {one_line(exc)}")


def too_short(backbone, n: int, path: str) -> RecordError:
    """The error for ``n`` samples that give ``backbone`` (one with ``num_frames``) no frame."""
    lo, hi = n + 1, max(2 * n, 16)
    while backbone.num_frames(hi) < 1 and hi < 1 << 30:
        lo, hi = hi + 1, 2 * hi
    while lo < hi:  # the fewest samples that give a frame
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if backbone.num_frames(mid) < 1 else (lo, mid)
    ms = 1000 / backbone.sample_rate
    return RecordError(
        f"audio is too short for this backbone ({n * ms:.1f} ms; it needs at least {lo * ms:.1f} ms): {path}"
    )


def backbone_failure(backbone, exc: Exception) -> RecordError:
    if isinstance(exc, RecordError):
        return exc
    return RecordError(f"backbone {getattr(backbone, 'name', type(backbone).__name__)!r} failed on this audio: "
                       f"{one_line(exc)}")


def forward_each(backbone, wavs: list, device: str) -> list:
    """``backbone.forward(wavs)``; if the batch raises, each input again on its own: a tensor
    per input, or the RecordError of an input the backbone fails on (or gives a tensor of the
    wrong shape, see `check_output`)."""
    try:
        feats = list(backbone.forward(wavs, device=device))
        if len(feats) != len(wavs):
            raise RuntimeError(f"forward returned {len(feats)} outputs for {len(wavs)} inputs")
        return [_checked(backbone, f) for f in feats]
    except Exception as exc:  # noqa: BLE001 - any backbone, any error: isolate the bad input
        if len(wavs) == 1:
            return [backbone_failure(backbone, exc)]
    out = []
    for wav in wavs:
        try:
            out.append(_checked(backbone, backbone.forward([wav], device=device)[0]))
        except Exception as exc:  # noqa: BLE001
            out.append(backbone_failure(backbone, exc))
    return out


def _checked(backbone, feats):
    try:
        check_output(backbone, feats)
    except RecordError as exc:
        return exc
    return feats


def check_output(backbone, feats) -> None:
    """RecordError unless ``feats`` is what `Backbone.forward` promises for one input: a
    floating-point torch tensor (layers, frames, dim) with the backbone's ``num_layers`` and a
    dim of at least 1 (frames are checked after chunking, by `check_frames`)."""
    import torch

    name = getattr(backbone, "name", type(backbone).__name__)
    if not isinstance(feats, torch.Tensor):
        raise RecordError(f"backbone {name!r} returned a {type(feats).__name__}, not a torch tensor")
    shape = list(feats.shape)
    layers = backbone.num_layers
    if feats.dim() != 3 or shape[0] != layers or shape[2] < 1:
        raise RecordError(f"backbone {name!r} returned features of shape {shape}, not ({layers} layers, "
                          "frames, dim): not stored")
    if not (feats.is_floating_point() or feats.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                          torch.uint8)):
        raise RecordError(f"backbone {name!r} returned {feats.dtype} features, not real numbers")


def check_num_frames(backbone, feats, n_samples: int) -> None:
    """SercliError (the run ends: every record would be cut wrong) when the backbone declares
    ``num_frames`` and ``forward`` gave ``n_samples`` of audio another number of frames: chunks
    are planned and stitched with ``num_frames``, so a mismatch would drop or misplace frames."""
    declared = backbone.num_frames(n_samples)
    got = int(feats.shape[1])
    if declared is not None and int(declared) != got:
        from sercli.core.plugins import describe

        raise SercliError(f"{describe('backbone', backbone)}: forward gave {got} frames for {n_samples} samples, "
                          f"but its num_frames({n_samples}) says {declared}; make them agree (a bug in the backbone)")


def check_frames(feats, backbone, compute_dtype: str | None) -> None:
    """RecordError unless ``feats`` (layers, frames, dim), as the backbone gave them, has
    frames and only finite values."""
    import torch

    name = getattr(backbone, "name", type(backbone).__name__)
    if feats.shape[1] == 0:
        raise RecordError(f"backbone {name!r} gave no frames for this audio (too short?)")
    if not bool(torch.isfinite(feats).all()):
        hint = f" (computed in {compute_dtype}: try --dtype bf16, or none)" if compute_dtype == "fp16" else ""
        raise RecordError(f"non-finite features (NaN or infinity) from backbone {name!r}{hint}")


def check_sums(sums) -> None:
    if not all(np.isfinite(s).all() for s in sums):
        raise RecordError("non-finite features (NaN or infinity, or sums beyond float64)")


def to_store(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in the store's precision; RecordError if any is not finite, before or after
    the cast (a finite float32 beyond 65504 becomes infinity in float16)."""
    values = np.asarray(values)
    if not np.isfinite(values).all():
        raise RecordError("non-finite features (NaN or infinity)")
    with np.errstate(over="ignore"):  # said below, in words
        out = values.astype(dtype)
    if not np.isfinite(out).all():
        big = float(np.abs(values).max())
        raise RecordError(
            f"features exceed the {np.dtype(dtype).name} range of the store (largest |value| {big:.3g} > "
            f"{float(np.finfo(dtype).max):g}): extract with --store-dtype float32 (into another --store)"
        )
    return out


def check_weights(model, where) -> None:
    """SercliError if a parameter or buffer of ``model`` (a torch module) is NaN or infinite."""
    import torch

    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise SercliError(f"{where}: the model's {name} holds NaN or infinite values "
                              "(trained on non-finite features?): train it again")
