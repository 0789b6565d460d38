"""The baseline and random mixing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from sercli.api import Strategy
from sercli_strategies.amount import RATIO_HELP, RATIOS_HELP, AmountStrategy, GuardOptions, Ratio, Ratios

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI


class RealOnly(Strategy):
    name = "real-only"
    description = "Baseline: train on real data only; synthetic data is ignored."

    def fit(self, trainer: TrainerAPI, real: Examples, synthetic: Examples, val: Examples) -> HeadModule:
        trainer.note_used(synthetic=0)
        model = trainer.new_model(real)
        return trainer.fit(model, real, val, stage="real")


class Mix(AmountStrategy):
    name = "mix"
    description = ("Random mixing: add synthetic utterances at a synthetic:real ratio (paper: 1:2), "
                   "by default 0, 0.5 or 1, a positive amount only where the harm guard measures a gain.")

    class Options(GuardOptions):
        ratio: Ratio = Field("auto", description=RATIO_HELP)
        ratios: Ratios = Field("0,0.5,1", description=RATIOS_HELP)

    def train(self, trainer: TrainerAPI, real: Examples, used: Examples, val: Examples, ratio) -> HeadModule:
        trainer.note_used(synthetic=used)
        data = real + used
        return trainer.fit(trainer.new_model(data), data, val, stage=f"mix(ratio={ratio})")
