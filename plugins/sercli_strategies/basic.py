from __future__ import annotations

import numpy as np
from pydantic import Field

from sercli.base import Options, Strategy


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
        want = int(round(self.options.ratio * len(real)))
        rng = np.random.default_rng(trainer.cfg.seed)
        pick = rng.permutation(len(synthetic))[: min(want, len(synthetic))]
        train = real + synthetic.subset(sorted(pick.tolist()))
        model = trainer.new_model(train)
        return trainer.fit(model, train, val, stage=f"mix(ratio={self.options.ratio})")
