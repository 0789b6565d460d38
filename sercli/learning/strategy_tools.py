"""Helpers strategies share: checking for, sampling and filtering synthetic examples.

Plugin authors import them from ``sercli.api``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sercli.core.errors import SercliError
from sercli.core.log import warn

if TYPE_CHECKING:
    from sercli.learning.data import Examples


def need_synthetic(synthetic: "Examples", strategy: str) -> None:
    """SercliError (the run ends with the fix) when ``synthetic`` is empty."""
    if not len(synthetic):
        raise SercliError(f"strategy {strategy!r} needs synthetic records: pass --synthetic FEATURES.jsonl")


def sample_synthetic(real: "Examples", synthetic: "Examples", ratio: float, seed: int) -> "Examples":
    """A random subset of ``synthetic`` with ``ratio`` synthetic utterances per real one
    (all of them, with a warning, when fewer exist), in their original order."""
    import numpy as np

    want = int(round(ratio * len(real)))
    if want > len(synthetic):
        warn(f"ratio {ratio} asks for {want} synthetic utterances; only {len(synthetic)} exist: using all")
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(synthetic))[: min(want, len(synthetic))]
    return synthetic.subset(sorted(pick.tolist()))


def derived_only_from(real: "Examples", synthetic: "Examples") -> "Examples":
    """``synthetic`` without the speech derived from recordings outside ``real``: a record with
    ``derived_from`` (followed through derived records to the first real one) stays only when
    that recording is one of ``real``'s. For a strategy that trains on part of its training
    data (inner folds): derived speech of the held-out part would bring its audio back in."""
    from sercli.learning.fold import derived_source

    if not any(r.get("derived_from") is not None for r in synthetic.records):
        return synthetic
    by_id = {str(r["id"]): r for r in synthetic.records if r.get("id") is not None}
    ids = {str(r.get("id")) for r in real.records}
    keep = [i for i, r in enumerate(synthetic.records) if (s := derived_source(r, by_id)) is None or s in ids]
    return synthetic.subset(keep)
