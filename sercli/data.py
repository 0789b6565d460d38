"""Labelled examples backed by feature stores, and batching for the trainer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from sercli.errors import SercliError
from sercli.features import FeatureStore

_stores: dict[str, FeatureStore] = {}
# Decoded features shared by every Examples object, so the folds and seeds of a
# cross-validation read each item from disk once. Bounded: past the budget, items are read
# from the (memory-mapped) store each time instead.
_cache: dict[tuple[str, str], np.ndarray] = {}
_cache_bytes = 0
CACHE_LIMIT = int(os.environ.get("SERCLI_FEATURE_CACHE_MB", "2048")) << 20


def store_for(path: str) -> FeatureStore:
    if path not in _stores:
        _stores[path] = FeatureStore(path)
    return _stores[path]


def feature_meta(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The store metadata shared by all records; an error if they mix kinds of features."""
    metas: dict[str, dict] = {}
    for rec in records:
        feats = rec.get("features")
        if not feats:
            raise SercliError(f"record {rec.get('id')!r} has no features: run `sercli extract` first")
        if feats["store"] not in metas:
            metas[feats["store"]] = store_for(feats["store"]).meta()
    if not metas:
        raise SercliError("no records with features")
    first_path, first = next(iter(metas.items()))
    for path, meta in metas.items():
        if meta != first:
            raise SercliError(f"feature stores {first_path} and {path} hold different kinds of features")
    return first


@dataclass
class Examples:
    """Records with integer labels and a domain (0 = real, 1 = synthetic)."""

    records: list[dict[str, Any]]
    labels: list[int]
    domains: list[int]

    @classmethod
    def build(cls, records, label_index: dict[str, int], domain: int) -> "Examples":
        keep = [r for r in records if r["emotion"] in label_index]
        return cls(keep, [label_index[r["emotion"]] for r in keep], [domain] * len(keep))

    def __len__(self) -> int:
        return len(self.records)

    def __add__(self, other: "Examples") -> "Examples":
        return Examples(self.records + other.records, self.labels + other.labels, self.domains + other.domains)

    def subset(self, idx: Iterable[int]) -> "Examples":
        idx = list(idx)
        return Examples(
            [self.records[i] for i in idx], [self.labels[i] for i in idx], [self.domains[i] for i in idx]
        )

    def speakers(self) -> list[str]:
        return [str(r.get("speaker", "")) for r in self.records]

    def durations(self) -> list[float]:
        out = []
        for i, r in enumerate(self.records):
            d = r.get("duration")
            out.append(float(d) if d is not None else float(self.features(i).shape[1]))
        return out

    def features(self, i: int) -> np.ndarray:
        """(layers, frames, dim) float32, read lazily from the store and then kept."""
        global _cache_bytes
        f = self.records[i]["features"]
        key = (f["store"], f["key"])
        arr = _cache.get(key)
        if arr is None:
            arr = store_for(f["store"]).get(f["key"]).astype(np.float32)
            if _cache_bytes + arr.nbytes <= CACHE_LIMIT:
                _cache[key] = arr
                _cache_bytes += arr.nbytes
        return arr


def collate(examples: Examples, idx: list[int]):
    """Pad a batch along frames: (B, L, T, D), lengths (B,), labels (B,), domains (B,)."""
    import torch

    feats = [examples.features(i) for i in idx]
    lengths = [f.shape[1] for f in feats]
    L, _, D = feats[0].shape
    x = np.zeros((len(idx), L, max(lengths), D), dtype=np.float32)
    for b, f in enumerate(feats):
        x[b, :, : f.shape[1]] = f
    return (
        torch.from_numpy(x),
        torch.tensor(lengths),
        torch.tensor([examples.labels[i] for i in idx]),
        torch.tensor([examples.domains[i] for i in idx]),
    )


def layer_stats(examples: Examples, max_items: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer, per-dimension mean and std over frames of (a sample of) the training data."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(examples))[:max_items]
    total = None
    for i in idx:
        f = examples.features(int(i)).astype(np.float64)
        s = np.stack([f.sum(1), (f**2).sum(1)])  # (2, L, D)
        n = f.shape[1]
        total = (s, n) if total is None else (total[0] + s, total[1] + n)
    sums, n = total
    mean = sums[0] / n
    std = np.sqrt(np.maximum(sums[1] / n - mean**2, 1e-10))
    return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)
