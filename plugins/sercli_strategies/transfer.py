"""Transfer learning: train on synthetic speech first, then fine-tune on real speech.

Each stage is standardised with its own data's statistics: the head pre-trains on synthetic
features in synthetic z-scores, then takes the real data's mean and std before it fine-tunes,
so that both stages feed its layers inputs of the same scale (synthetic features in real
z-scores sit far from zero: a first-stage loss of ~20 where a fresh head starts near ln C).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pydantic import Field

from sercli_strategies.amount import RATIO_HELP, RATIOS_HELP, AmountStrategy, GuardOptions, Ratio, Ratios

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI


def restandardise(model, fresh) -> None:
    """Give ``model`` the standardisation statistics (the ``mean`` and ``std`` buffers, on the
    head or wherever the model keeps them) of ``fresh``, a new model of the same kind."""
    import torch

    theirs = dict(fresh.named_buffers())
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.rsplit(".", 1)[-1] in ("mean", "std") and name in theirs:
                buf.copy_(theirs[name])


class Transfer(AmountStrategy):
    name = "transfer"
    description = "Pre-train the head on synthetic data, then fine-tune it on real data (each stage in its own z-scores)."

    class Options(GuardOptions):
        finetune_lr: float = Field(0.3, gt=0, description="Fine-tuning learning rate as a factor of --lr.")
        pretrain_epochs: Optional[int] = Field(None, ge=1, description="At most this many synthetic epochs (default: --epochs).")
        ratio: Ratio = Field("auto", description=RATIO_HELP + " Pre-training uses these.")
        ratios: Ratios = Field("0,all", description=RATIOS_HELP)

    def train(self, trainer: TrainerAPI, real: Examples, used: Examples, val: Examples, ratio) -> HeadModule:
        trainer.note_used(synthetic=used)
        if not len(used):  # nothing to pre-train on: the real data alone
            return trainer.fit(trainer.new_model(real), real, val, stage="fine-tune real")
        model = trainer.new_model(used)  # synthetic statistics for the synthetic stage
        # Early stopping on the (real) validation part picks the pre-training that transfers best.
        trainer.fit(model, used, val, stage="pre-train synthetic", max_epochs=self.options.pretrain_epochs)
        restandardise(model, trainer.new_model(real))  # real statistics for the real stage (and for use)
        return trainer.fit(model, real, val, stage="fine-tune real", lr=trainer.cfg.lr * self.options.finetune_lr)
