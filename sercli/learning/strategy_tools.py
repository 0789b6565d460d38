"""Helpers strategies share: checking for and sampling synthetic examples.

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
