"""Steps 3 and 4 of an extraction, for one batch and one recording: decode, run the model,
reduce each segment; then stitch a recording's parts into its stored array.

Each segment comes back reduced (a ``Part``): pooled, or the frames it keeps, or sums for
pooling, so only small arrays travel between processes. A segment the backbone fails on, or
whose features are not finite, is that record's RecordError (sercli.core.guards); the others in
its batch go through. ``extract_waveform`` runs the same steps on one in-memory waveform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sercli.core.audio import read_segment
from sercli.core.errors import RecordError, SercliError
from sercli.features.config import ExtractConfig, autocast, batch_seconds, parse_layers
from sercli.features.plan import Item, Segment, batches, plan_item
from sercli.core.guards import (
    backbone_failure, check_frames, check_num_frames, check_sums, forward_each, to_store,
)


def decode(job: list[tuple[str, int, Segment]]) -> list[np.ndarray | RecordError]:
    """One decoded array (or its RecordError) per (path, sample rate, segment)."""
    out: list[np.ndarray | RecordError] = []
    for path, sr, seg in job:
        try:
            out.append(read_segment(path, sr, seg.start, seg.stop, seg.keep is None))
        except RecordError as exc:
            out.append(exc)
    return out


def pool_frames(feats, how: str):
    """(layers, frames, dim) tensor -> pooled (layers, 1, dim') tensor, or unchanged for 'none'."""
    import torch

    if how == "none":
        return feats
    mean = feats.mean(dim=1, keepdim=True)
    if how == "mean":
        return mean
    if how == "mean+std":
        std = feats.std(dim=1, keepdim=True, unbiased=False)
        return torch.cat([mean, std], dim=-1)
    raise SercliError(f"pool {how!r}: expected none, mean or mean+std")


@dataclass
class Part:
    """What one segment contributes to its recording's stored array."""

    array: np.ndarray | None = None  # the whole result, or the frames a chunk keeps (store dtype)
    sums: tuple[np.ndarray, np.ndarray] | None = None  # a pooled chunk: float64 sum, sum of squares
    count: int = 0  # frames in ``sums``


def compute(backbone, segments: list[Segment], wavs: list, cfg: ExtractConfig) -> list[Part | RecordError]:
    """Run one batch (``wavs`` as ``decode`` returns them) and reduce each segment to its Part.
    A segment the backbone fails on, or whose features are not finite, gets its RecordError
    (sercli.core.guards): the others go through."""
    import torch

    layers = parse_layers(cfg.layers, backbone.num_layers)
    dtype = np.dtype(cfg.store_dtype)
    out: list[Part | RecordError] = list(wavs)
    ok = [i for i, w in enumerate(wavs) if not isinstance(w, RecordError)]
    if not ok:
        return out
    with torch.inference_mode(), autocast(cfg):
        feats = forward_each(backbone, [wavs[i] for i in ok], cfg.device)
        for i, f in zip(ok, feats):
            if not isinstance(f, RecordError):  # a bug in the backbone: the run ends, naming it
                check_num_frames(backbone, f, segments[i].stop - segments[i].start)
            try:
                out[i] = f if isinstance(f, RecordError) else _reduce(backbone, f, layers, segments[i], cfg, dtype)
            except Exception as exc:  # noqa: BLE001 - its features were unusable: this record only
                out[i] = backbone_failure(backbone, exc)
    return out


def _reduce(backbone, f, layers: list[int], seg: Segment, cfg: ExtractConfig, dtype) -> Part:
    f = f[layers].float()
    if seg.keep is None:  # the whole recording in one segment
        check_frames(f, backbone, cfg.compute_dtype)
        return Part(to_store(pool_frames(f, cfg.pool).cpu().numpy(), dtype))
    f = f[:, seg.keep[0] : seg.keep[1]]
    check_frames(f, backbone, cfg.compute_dtype)
    if cfg.pool == "none":
        return Part(to_store(f.cpu().numpy(), dtype))
    f = f.double()
    sums = (f.sum(1).cpu().numpy(), f.pow(2).sum(1).cpu().numpy())
    check_sums(sums)
    return Part(sums=sums, count=f.shape[1])


class Assembly:
    """Collects one recording's Parts into its stored array (pooled, or all its frames)."""

    def __init__(self, item: Item, pool: str, dtype):
        self.item, self.pool, self.dtype = item, pool, dtype
        self.missing = len(item.segments)
        self.frames: np.ndarray | None = None  # pool none, chunked: (L, T, D) in store dtype
        self.sums: list[np.ndarray] | None = None
        self.count = 0
        self.result: np.ndarray | None = None

    def add(self, seg: Segment, part: Part) -> bool:
        """True once every segment is in (then ``result`` holds the array)."""
        self.missing -= 1
        if seg.keep is None:
            self.result = part.array
            return True
        if self.pool == "none":
            if self.frames is None:
                L, _, D = part.array.shape
                self.frames = np.empty((L, self.item.frames, D), dtype=self.dtype)
            self.frames[:, seg.offset : seg.offset + part.array.shape[1]] = part.array
        else:
            self.sums = list(part.sums) if self.sums is None else [a + b for a, b in zip(self.sums, part.sums)]
            self.count += part.count
        if self.missing:
            return False
        if self.pool == "none":
            self.result = self.frames
        else:
            mean = self.sums[0] / self.count
            out = [mean]
            if self.pool == "mean+std":
                out.append(np.sqrt(np.maximum(self.sums[1] / self.count - mean**2, 0.0)))
            self.result = to_store(np.concatenate(out, axis=-1)[:, None], self.dtype)  # RecordError if too big
        return True


def extract_waveform(backbone, wav: np.ndarray, cfg: ExtractConfig, source: str = "<array>") -> np.ndarray:
    """The stored array for one in-memory waveform (at ``backbone.sample_rate``), made as
    ``run_extraction`` makes it (chunks, layers, pooling, store dtype), in this process;
    RecordError where ``run_extraction`` would skip it. Call ``backbone.load`` first."""
    item = plan_item(0, "waveform", source, len(wav), backbone, cfg)
    asm = Assembly(item, cfg.pool, np.dtype(cfg.store_dtype))
    for batch in batches([item], int(batch_seconds(cfg) * backbone.sample_rate), backbone.padding_sensitive):
        for seg, part in zip(batch, compute(backbone, batch, [wav[s.start : s.stop] for s in batch], cfg)):
            if isinstance(part, RecordError):
                raise part
            asm.add(seg, part)
    return asm.result
