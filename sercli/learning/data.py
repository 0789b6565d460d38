"""Labelled examples backed by feature stores, and batching for the trainer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from sercli.core.errors import SercliError
from sercli.features.store import FeatureStore
from sercli.features.read import CACHE_LIMIT, read_features

# the standardised features one Examples keeps (every epoch reads each of them again)
NORMALISED_LIMIT = CACHE_LIMIT // 4


@dataclass
class Examples:
    """Records with integer labels and a domain (0 = real, 1 = synthetic); with ``norm``, each
    record's features are read standardised by its (mean, std) there (`sercli.learning.speakernorm`);
    with ``values``, the (N, K) numbers of the run's dimensional targets (`sercli.core.targets`)."""

    records: list[dict[str, Any]]
    labels: list[int]
    domains: list[int]
    norm: list[tuple[np.ndarray, np.ndarray] | None] | None = None
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        # index -> standardised features, read-only; not a field: a new Examples (subset, replace) starts empty
        self._normalised: dict[int, np.ndarray] = {}
        self._normalised_bytes = 0

    @classmethod
    def build(cls, records, label_index: dict[str, int], domain: int, targets: list[str] | None = None) -> "Examples":
        """The records whose emotion is in ``label_index`` (every record when it is empty and
        ``targets`` are given: a regression run has no classes; label 0 each), with their
        ``targets`` values."""
        if targets and not label_index:
            keep, labels = list(records), [0] * len(records)
        else:
            keep = [r for r in records if r["emotion"] in label_index]
            labels = [label_index[r["emotion"]] for r in keep]
        if not targets:
            return cls(keep, labels, [domain] * len(keep))
        from sercli.core.targets import values

        return cls(keep, labels, [domain] * len(keep), values=values(keep, targets))

    def __len__(self) -> int:
        return len(self.records)

    def __add__(self, other: "Examples") -> "Examples":
        norm = None
        if self.norm is not None or other.norm is not None:
            norm = (self.norm or [None] * len(self)) + (other.norm or [None] * len(other))
        values = None
        if self.values is not None or other.values is not None:
            if self.values is None or other.values is None:
                raise SercliError("cannot join examples with target values and examples without")
            values = np.concatenate([self.values, other.values])
        return Examples(self.records + other.records, self.labels + other.labels, self.domains + other.domains, norm,
                        values)

    def subset(self, idx: Iterable[int]) -> "Examples":
        idx = list(idx)
        return Examples(
            [self.records[i] for i in idx], [self.labels[i] for i in idx], [self.domains[i] for i in idx],
            None if self.norm is None else [self.norm[i] for i in idx],
            None if self.values is None else self.values[np.asarray(idx, dtype=int)].reshape(len(idx), self.values.shape[1]),
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
        kept = self._normalised.get(i)
        if kept is not None:
            return kept
        x = read_features(self.records[i])
        stats = self.norm[i] if self.norm is not None else None
        if stats is None:
            return x
        from sercli.learning.speakernorm import normalise

        x = normalise(x, stats)
        if self._normalised_bytes + x.nbytes <= NORMALISED_LIMIT:
            x.flags.writeable = False  # shared by every later read
            self._normalised[i] = x
            self._normalised_bytes += x.nbytes
        return x


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
