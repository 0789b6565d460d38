"""Reading extracted features back: a record's (layers, frames, dim) float32 array from its
feature store, with one shared, bounded cache; the checks on shape and finiteness; and the
feature description (`feature_meta`) a run records."""

from __future__ import annotations

import os
from typing import Any, Iterable

import numpy as np

from sercli.core.errors import SercliError
from sercli.features.store import FeatureStore

# Decoded features shared by every reader, so the folds and seeds of a cross-validation read
# each item from disk once. Bounded: past the budget, items are read from the (memory-mapped)
# store each time instead.


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
