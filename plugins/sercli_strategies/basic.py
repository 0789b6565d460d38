"""The baseline and random mixing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from sercli.api import Options, Strategy, need_synthetic, sample_synthetic

if TYPE_CHECKING:
    from sercli.api import Examples, Head, TrainerAPI


class RealOnly(Strategy):
    name = "real-only"
    description = "Baseline: train on real data only; synthetic data is ignored."

    def fit(self, trainer: TrainerAPI, real: Examples, synthetic: Examples, val: Examples) -> Head:
        model = trainer.new_model(real)
        return trainer.fit(model, real, val, stage="real")


class Mix(Strategy):
    name = "mix"
    description = "Random mixing: add synthetic utterances at a synthetic:real ratio (paper: 1:2)."

    class Options(Options):
        ratio: float = Field(0.5, ge=0, description="Synthetic utterances per real one (0.5 = 1:2).")

    def fit(self, trainer: TrainerAPI, real: Examples, synthetic: Examples, val: Examples) -> Head:
        if self.options.ratio > 0:
            need_synthetic(synthetic, self.name)
        used = sample_synthetic(real, synthetic, self.options.ratio, trainer.cfg.seed)
        trainer.note_used(synthetic=used)
        train = real + used
        model = trainer.new_model(train)
        return trainer.fit(model, train, val, stage=f"mix(ratio={self.options.ratio})")
