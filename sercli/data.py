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
# (store, key) whose values are known to be finite numbers
_finite: set[tuple[str, str]] = set()


def store_for(path: str) -> FeatureStore:
    if path not in _stores:
        _stores[path] = FeatureStore(path)
    return _stores[path]


def feature_meta(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The store metadata shared by all records; an error if they mix kinds of features, or if
    a record's features are missing from its store or are not finite numbers (checked here,
    before any training, for stores written before sercli refused to store them)."""
    metas: dict[str, dict] = {}
    dims: dict[tuple[int, int], dict[str, Any]] = {}  # (layers, dim) -> a record that has it
    for rec in records:
        feats = rec.get("features")
        if not feats:
            raise SercliError(f"record {rec.get('id')!r} has no features: run `sercli extract` first")
        if feats["store"] not in metas:
            metas[feats["store"]] = store_for(feats["store"]).meta()
        shape = check_finite(rec)
        if shape is not None:
            check_shape(rec, shape)
            dims.setdefault((shape[0], shape[2]), rec)
    if not metas:
        raise SercliError("no records with features")
    first_path, first = next(iter(metas.items()))
    for path, meta in metas.items():
        if meta != first:
            raise SercliError(f"feature stores {first_path} and {path} hold different kinds of features")
    if len(dims) > 1:
        (a, ra), (b, rb) = list(dims.items())[:2]
        raise SercliError(f"records {ra.get('id')!r} and {rb.get('id')!r} have features of different sizes "
                          f"({a[0]} layers x {a[1]} and {b[0]} layers x {b[1]}, in {_store(ra)} and {_store(rb)}): "
                          "extract them again into one store")
    return first


def _store(rec: dict[str, Any]) -> str:
    return str(rec["features"]["store"])


def check_shape(rec: dict[str, Any], shape) -> None:
    """SercliError unless ``shape`` is (layers, frames, dim), each at least 1: the only shape
    the head reads (a store written by a faulty backbone or tool may hold others)."""
    shape = list(shape)
    if len(shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in shape):
        f = rec["features"]
        what = "no frames" if len(shape) == 3 and shape[1] == 0 else f"shape {shape}, not (layers, frames, dim)"
        raise SercliError(f"record {rec.get('id')!r}: its features in store {f['store']} (key {f['key']!r}) have "
                          f"{what}: run `sercli extract` on it again, or leave it out")


def check_dims(records: Iterable[dict[str, Any]], head: dict[str, Any], where: Any) -> None:
    """SercliError if a record's features are not of the size the model ``head`` reads."""
    want = (head.get("num_layers"), head.get("dim"))
    for rec in records:
        x = read_features(rec)
        if (x.shape[0], x.shape[2]) != want:
            raise SercliError(f"record {rec.get('id')!r}: its features have {x.shape[0]} layers x {x.shape[2]}, the "
                              f"model in {where} reads {want[0]} x {want[1]}: extract them as its training features were")


@dataclass
class Examples:
    """Records with integer labels and a domain (0 = real, 1 = synthetic); with ``norm``, each
    record's features are read standardised by its (mean, std) there (`sercli.speakernorm`)."""

    records: list[dict[str, Any]]
    labels: list[int]
    domains: list[int]
    norm: list[tuple[np.ndarray, np.ndarray] | None] | None = None

    @classmethod
    def build(cls, records, label_index: dict[str, int], domain: int) -> "Examples":
        keep = [r for r in records if r["emotion"] in label_index]
        return cls(keep, [label_index[r["emotion"]] for r in keep], [domain] * len(keep))

    def __len__(self) -> int:
        return len(self.records)

    def __add__(self, other: "Examples") -> "Examples":
        norm = None
        if self.norm is not None or other.norm is not None:
            norm = (self.norm or [None] * len(self)) + (other.norm or [None] * len(other))
        return Examples(self.records + other.records, self.labels + other.labels, self.domains + other.domains, norm)

    def subset(self, idx: Iterable[int]) -> "Examples":
        idx = list(idx)
        return Examples(
            [self.records[i] for i in idx], [self.labels[i] for i in idx], [self.domains[i] for i in idx],
            None if self.norm is None else [self.norm[i] for i in idx],
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
        """(layers, frames, dim) float32, read lazily from the store and then kept (standardised
        with ``norm[i]`` when set); an error naming the record and its store if they are not
        finite numbers."""
        x = read_features(self.records[i])
        stats = self.norm[i] if self.norm is not None else None
        if stats is None:
            return x
        from sercli.speakernorm import normalise

        return normalise(x, stats)


def read_features(rec: dict[str, Any]) -> np.ndarray:
    """The (layers, frames, dim) float32 features of ``rec`` (cached); SercliError if any value
    is NaN or infinite (never trained on, nor predicted from)."""
    global _cache_bytes
    f = rec["features"]
    key = (f["store"], f["key"])
    arr = _cache.get(key)
    if arr is None:
        arr = store_for(f["store"]).get(f["key"]).astype(np.float32)
        check_shape(rec, arr.shape)
        # every read from disk is checked: an index row's "finite" is a claim, not a proof
        # (a hand-made or damaged store can hold infinities under it)
        if not np.isfinite(arr).all():
            raise SercliError(nonfinite_message(rec))
        _finite.add(key)
        if _cache_bytes + arr.nbytes <= CACHE_LIMIT:
            _cache[key] = arr
            _cache_bytes += arr.nbytes
    return arr


def nonfinite_message(rec: dict[str, Any]) -> str:
    f = rec["features"]
    return (f"record {rec.get('id')!r}: its features in store {f['store']} (key {f['key']!r}) hold NaN or "
            "infinite values (stored by an older sercli?): run `sercli extract` on it again, which skips "
            "such records with the reason, or leave it out")


def check_finite(rec: dict[str, Any]) -> list[int] | None:
    """SercliError if ``rec``'s features are not in its store or are not all finite; returns
    their shape. Rows that a current sercli wrote say they are finite (checked again when the
    values are read); older rows are read and checked now."""
    f = rec["features"]
    row = store_for(f["store"]).index().get(f["key"])
    if row is None:
        raise SercliError(f"record {rec.get('id')!r}: its features (key {f['key']!r}) are not in store "
                          f"{f['store']}: run `sercli extract` again")
    if (f["store"], f["key"]) not in _finite and row.get("finite") is not True:
        return list(read_features(rec).shape)
    shape = row.get("shape")
    return list(shape) if isinstance(shape, list) else list(read_features(rec).shape)


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


DEAD_DIM = 1e-3  # std below this share of its layer's median std: a constant dimension
OFF_SCALE = 1e8  # the std a constant dimension gets, so x / std is about 0 (float16 features are < 65504)


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
    std = np.sqrt(np.maximum(sums[1] / n - mean**2, 0.0))
    # A dimension that (nearly) does not vary over the training data carries nothing the head can
    # learn, but dividing by its tiny std would blow up any variation elsewhere: with a quarter
    # of EmoDB, speaker-normalised float16 features have such dimensions and validation values
    # reached 4e5, collapsing the head onto one class. Such a dimension is switched off: its
    # scale is set so that it reads as (about) zero everywhere.
    typical = np.median(std, axis=-1, keepdims=True)
    dead = std <= DEAD_DIM * np.maximum(typical, 1e-12)
    std = np.where(dead, OFF_SCALE, np.maximum(std, 1e-5))
    return mean.astype(np.float32), std.astype(np.float32)
