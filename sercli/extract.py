"""Batch feature extraction into a FeatureStore.

Audio is decoded in a background pool, utterances are sorted by length and grouped into
batches of at most ``batch_seconds`` of audio, each batch goes through the backbone once,
and the selected layers are (optionally) pooled and appended to the store.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from sercli.errors import RecordError, SercliError


@dataclass
class ExtractConfig:
    layers: str = "all"  # "all" | "last" | "0,6,12"
    pool: str = "mean"  # "none" | "mean" | "mean+std"
    store_dtype: str = "float16"
    batch_seconds: float = 60.0
    device: str = "cpu"
    workers: int = 2


def parse_layers(spec: str, num_layers: int) -> list[int]:
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(num_layers))
    if spec == "last":
        return [num_layers - 1]
    try:
        idx = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise SercliError(f"--layers {spec!r}: expected all, last or comma-separated numbers") from None
    bad = [i for i in idx if not -num_layers <= i < num_layers]
    if bad or not idx:
        raise SercliError(f"--layers {spec!r}: this backbone has layers 0..{num_layers - 1}")
    return [i % num_layers for i in idx]


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
    raise SercliError(f"--pool {how!r}: expected none, mean or mean+std")


def length_batches(lengths: dict[str, int], max_samples: int) -> list[list[str]]:
    """Sort ids by length and fill each batch up to ``max_samples`` of padded audio."""
    order = sorted(lengths, key=lengths.get)
    batches: list[list[str]] = []
    cur: list[str] = []
    for key in order:
        # padded size of the batch if this (longest so far) item joins it
        if cur and lengths[key] * (len(cur) + 1) > max_samples:
            batches.append(cur)
            cur = []
        cur.append(key)
    if cur:
        batches.append(cur)
    return batches


def run_extraction(
    backbone,
    items: list[tuple[str, str]],
    store,
    cfg: ExtractConfig,
    load: Callable[[str], np.ndarray],
    on_error: Callable[[str, str], None],
    on_progress: Callable[[int], None] = lambda n: None,
) -> None:
    """Extract ``items`` ((key, audio_path) pairs) into ``store``.

    Keys become visible in the store's index only once their shard is on disk, so callers
    emit output records from the index after this returns.
    """
    import torch

    layers = parse_layers(cfg.layers, backbone.num_layers)
    dtype = {"float16": np.float16, "float32": np.float32}[cfg.store_dtype]
    sr = backbone.sample_rate
    max_samples = int(cfg.batch_seconds * sr)

    # Decode everything first (in threads: soundfile and resampling release the GIL),
    # so the batches can be sorted by length. Memory: the decoded audio of the corpus.
    wavs: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        for (key, path), result in zip(items, pool.map(_safe(load), (p for _, p in items))):
            if isinstance(result, RecordError):
                on_error(key, str(result))
                on_progress(1)
            else:
                wavs[key] = result

    backbone.load(cfg.device)
    with store.writer() as writer, torch.inference_mode():
        for batch in length_batches({k: len(w) for k, w in wavs.items()}, max_samples):
            outs = backbone.forward([wavs[k] for k in batch], device=cfg.device)
            for key, feats in zip(batch, outs):
                feats = pool_frames(feats[layers].float(), cfg.pool)
                arr = feats.cpu().numpy().astype(dtype)
                writer.add(key, arr)
                del wavs[key]
            on_progress(len(batch))


def _safe(fn):
    def wrapped(arg):
        try:
            return fn(arg)
        except RecordError as exc:
            return exc

    return wrapped
