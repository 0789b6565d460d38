"""The baseline and random mixing, plus the sampling of synthetic data shared by strategies."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sercli.base import Options, Strategy
from sercli.errors import SercliError
from sercli.log import warn


def need_synthetic(synthetic, strategy: str) -> None:
    if not len(synthetic):
        raise SercliError(f"strategy {strategy!r} needs synthetic records: pass --synthetic FEATURES.jsonl")


def sample_synthetic(real, synthetic, ratio: float, seed: int):
    """A random subset of ``synthetic`` with ``ratio`` synthetic utterances per real one."""
    want = int(round(ratio * len(real)))
    if want > len(synthetic):
        warn(f"ratio {ratio} asks for {want} synthetic utterances; only {len(synthetic)} exist: using all")
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(synthetic))[: min(want, len(synthetic))]
    return synthetic.subset(sorted(pick.tolist()))


class RealOnly(Strategy):
    name = "real-only"
    description = "Baseline: train on real data only; synthetic data is ignored."

    def fit(self, trainer, real, synthetic, val):
        model = trainer.new_model(real)
        return trainer.fit(model, real, val, stage="real")


class Mix(Strategy):
    name = "mix"
    description = "Random mixing: add synthetic utterances at a synthetic:real ratio (paper: 1:2)."

    class Options(Options):
        ratio: float = Field(0.5, ge=0, description="Synthetic utterances per real one (0.5 = 1:2).")

    def fit(self, trainer, real, synthetic, val):
        if self.options.ratio > 0:
            need_synthetic(synthetic, self.name)
        train = real + sample_synthetic(real, synthetic, self.options.ratio, trainer.cfg.seed)
        model = trainer.new_model(train)
        return trainer.fit(model, train, val, stage=f"mix(ratio={self.options.ratio})")
