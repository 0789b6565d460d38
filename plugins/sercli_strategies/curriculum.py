"""Curriculum learning: start from real data, then add synthetic data in stages, easy first.

Easy means short (``order=length``, as in the paper) or confidently recognised by the model
trained so far (``order=confidence``: the probability it gives the synthetic utterance's label).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, Optional

from pydantic import Field

from sercli.api import SercliError
from sercli_strategies.amount import RATIO_HELP, RATIOS_HELP, AmountStrategy, GuardOptions, Ratio, Ratios

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI


class Curriculum(AmountStrategy):
    name = "curriculum"
    description = "Real data first, then synthetic data added in stages from easy to hard (length or confidence)."

    class Options(GuardOptions):
        order: Literal["length", "confidence"] = Field("length", description="What makes an utterance easy.")
        stages: int = Field(3, ge=1, description="Stages that add synthetic data.")
        epochs_per_stage: Optional[int] = Field(
            None, ge=1, description="Epochs per stage (default: early stopping within at most --epochs)."
        )
        ratio: Ratio = Field("auto", description=RATIO_HELP + " All of it is in by the last stage.")
        ratios: Ratios = Field("0,0.5,1", description=RATIOS_HELP)

    def train(self, trainer: TrainerAPI, real: Examples, pool: Examples, val: Examples, ratio) -> HeadModule:
        import numpy as np

        trainer.note_used(synthetic=pool)  # the last stage trains on all of it
        model = trainer.new_model(real + pool)
        epochs = self.options.epochs_per_stage
        trainer.fit(model, real, val, stage="real", max_epochs=epochs)
        if not len(pool):
            # The same stages on the real data alone: with no synthetic data (ratio 0, the harm
            # guard's baseline) the training budget stays that of every other amount, so a gain
            # the guard measures is the synthetic data's and not that of more epochs.
            for k in range(1, self.options.stages + 1):
                trainer.fit(model, real, val, stage=f"stage {k}/{self.options.stages} (real only)", max_epochs=epochs)
            return model
        if self.options.order == "length":
            difficulty = np.asarray(pool.durations())
        elif getattr(trainer.cfg, "targets", None):
            raise SercliError("curriculum order=confidence ranks by the probability of a class: with --target "
                              "use order=length")
        else:
            probs = trainer.predict(model, pool)
            difficulty = -probs[np.arange(len(pool)), pool.labels]
        order = np.argsort(difficulty, kind="stable").tolist()  # easy first; ties keep their order
        for k in range(1, self.options.stages + 1):
            upto = math.ceil(k * len(order) / self.options.stages)
            train = real + pool.subset(order[:upto])
            trainer.fit(model, train, val, stage=f"stage {k}/{self.options.stages}", max_epochs=epochs)
        return model
