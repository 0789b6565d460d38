"""Domain-adversarial training (DANN, Ganin et al. 2016) with real and synthetic as domains.

A small domain classifier reads the head's utterance embedding through a gradient-reversal
layer: it learns to tell real from synthetic speech while the encoder learns embeddings
that do not let it, so what the emotion classifier learns from synthetic utterances carries
over to real ones.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from sercli.api import SercliError
from sercli_strategies.amount import RATIO_HELP, RATIOS_HELP, AmountStrategy, GuardOptions, Ratio, Ratios

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI


def _grad_reverse():
    import torch

    class GradReverse(torch.autograd.Function):
        """Identity forward; gradient times -lambda backward."""

        @staticmethod
        def forward(ctx, x, lam):
            ctx.lam = lam
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return -ctx.lam * grad, None

    return GradReverse


class Adversarial(AmountStrategy):
    name = "adversarial"
    description = "DANN: real-vs-synthetic domain classifier behind a gradient-reversal layer."

    class Options(GuardOptions):
        ratio: Ratio = Field("auto", description=RATIO_HELP)
        ratios: Ratios = Field("0,0.5,1", description=RATIOS_HELP)
        max_lambda: float = Field(1.0, ge=0, description="Final weight of the reversed domain gradient.")
        gamma: float = Field(10.0, gt=0, description="Steepness of the lambda ramp 2/(1+exp(-gamma*p))-1.")
        domain_hidden: int = Field(64, ge=1, description="Hidden size of the domain classifier.")

    def lam(self, epoch: int, epochs: int) -> float:
        """Ganin's schedule: 0 at the start, rising to max_lambda (p = training progress)."""
        p = epoch / max(epochs - 1, 1)
        return self.options.max_lambda * (2.0 / (1.0 + math.exp(-self.options.gamma * p)) - 1.0)

    def train(self, trainer: TrainerAPI, real: Examples, used: Examples, val: Examples, ratio) -> HeadModule:
        import numpy as np
        import torch
        from torch import nn

        from sercli.api import FitHooks

        trainer.note_used(synthetic=used)
        train = real + used
        model = trainer.new_model(train)
        if not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("classifier")):
            # the reversed gradient would reach no weight: the run would be `mix` under another name
            raise SercliError(
                f"--strategy adversarial needs a head that learns its embedding; --head {trainer.cfg.head} "
                "feeds the classifier the standardised features themselves, so the domain loss could change "
                "nothing: use --head mlp, attentive or cnn (or linear with -O layers=weighted)")
        if not len(used):  # no second domain to tell apart: plain training on the real data
            return trainer.fit(model, train, val, stage="adversarial(ratio=0)")
        domain = nn.Sequential(
            nn.Linear(model.embed_dim, self.options.domain_hidden), nn.ReLU(), nn.Linear(self.options.domain_hidden, 2)
        ).to(trainer.cfg.device)
        # Balanced domain loss: the classifier cannot win by always answering "real".
        counts = np.bincount(train.domains, minlength=2).astype(np.float64)
        weight = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=trainer.cfg.device)
        reverse = _grad_reverse()
        epochs = trainer.cfg.max_epochs

        def domain_loss(model, domain, emb, batch, epoch):
            logits = domain(reverse.apply(emb, self.lam(epoch, epochs)))
            return nn.functional.cross_entropy(logits, batch[3], weight=weight)

        return trainer.fit(model, train, val, hooks=FitHooks(extra=domain, extra_loss=domain_loss),
                           stage=f"adversarial(ratio={ratio})")
