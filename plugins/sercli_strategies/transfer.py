"""Transfer learning: train on synthetic speech first, then fine-tune on real speech."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pydantic import Field

from sercli.api import Options, Strategy, need_synthetic

if TYPE_CHECKING:
    from sercli.api import Examples, Head, TrainerAPI


class Transfer(Strategy):
    name = "transfer"
    description = "Pre-train the head on synthetic data, then fine-tune it on real data."

    class Options(Options):
        finetune_lr: float = Field(0.3, gt=0, description="Fine-tuning learning rate as a factor of --lr.")
        pretrain_epochs: Optional[int] = Field(None, ge=1, description="At most this many synthetic epochs (default: --epochs).")

    def fit(self, trainer: TrainerAPI, real: Examples, synthetic: Examples, val: Examples) -> Head:
        need_synthetic(synthetic, self.name)
        trainer.note_used(synthetic=synthetic)
        # Standardised with real statistics: the domain the model is finally used on.
        model = trainer.new_model(real)
        # Early stopping on the (real) validation part picks the pre-training that transfers best.
        trainer.fit(model, synthetic, val, stage="pre-train synthetic", max_epochs=self.options.pretrain_epochs)
        return trainer.fit(model, real, val, stage="fine-tune real", lr=trainer.cfg.lr * self.options.finetune_lr)
