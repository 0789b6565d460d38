"""Classic augmentations of the real data, the comparison the paper makes for synthetic data.

All four work on stored features, in the head's standardised units, so no audio is needed:

  noise        additive Gaussian noise (feature space)
  specaugment  SpecAugment-style time and feature masking (masked values become the mean)
  mixup        mixup of utterance embeddings (manifold mixup: utterances of any length mix)
  speed        speed perturbation approximated on frame features: each utterance is stretched
               in time by a random factor (linear interpolation of frames). Real speed
               perturbation also shifts pitch and needs the audio; this is the feature-level
               stand-in, and it needs frame-level features (extract with --pool none).

Synthetic data is not used: these are the alternatives to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from sercli.api import Options, SercliError, Strategy

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI


class _Augmentation(Strategy):
    stage = "augment"

    def augment(self, model, x, lengths, y, gen):
        return x, lengths

    def mix(self):
        return None

    def fit(self, trainer: TrainerAPI, real: Examples, synthetic: Examples, val: Examples) -> HeadModule:
        from sercli.api import FitHooks

        trainer.note_used(synthetic=0)
        model = trainer.new_model(real)
        return trainer.fit(model, real, val, stage=self.name, hooks=FitHooks(augment=self.augment, mix=self.mix()))


class Noise(_Augmentation):
    name = "noise"
    description = "Additive Gaussian noise on the features (sigma in units of each feature's std)."

    class Options(Options):
        sigma: float = Field(0.1, gt=0, description="Noise std relative to each feature's std.")

    def augment(self, model, x, lengths, y, gen):
        import torch

        noise = torch.randn(x.shape, generator=gen).to(x.device)
        return x + self.options.sigma * model.std[None, :, None, :] * noise, lengths


class SpecAugment(_Augmentation):
    name = "specaugment"
    description = "SpecAugment-style masking of frames and feature bands (utterance-level features: bands only)."

    class Options(Options):
        time_masks: int = Field(2, ge=0, description="Time masks per utterance.")
        time_width: int = Field(20, ge=1, description="Longest time mask (frames).")
        feature_masks: int = Field(2, ge=0, description="Feature masks per utterance.")
        feature_width: float = Field(0.1, gt=0, le=1, description="Widest feature mask (share of the dims).")

    def augment(self, model, x, lengths, y, gen):
        import torch

        x = x.clone()
        B, _, _, D = x.shape
        opts = self.options
        fmax = max(1, int(round(opts.feature_width * D)))

        def draw(high):  # an integer in [0, high) from the trainer's generator
            return int(torch.randint(0, max(high, 1), (1,), generator=gen))

        fill = model.mean  # (L, D): masked values become the training mean, 0 once standardised
        for b in range(B):
            T = int(lengths[b])
            if T > 1:  # frame features: mask up to time_width consecutive frames
                for _ in range(opts.time_masks):
                    w = draw(min(opts.time_width, T // 2) + 1)
                    t0 = draw(T - w + 1)
                    x[b, :, t0 : t0 + w, :] = fill[:, None, :]
            for _ in range(opts.feature_masks):
                w = draw(fmax + 1)
                f0 = draw(D - w + 1)
                x[b, :, :, f0 : f0 + w] = fill[:, None, f0 : f0 + w]
        return x, lengths


class Mixup(_Augmentation):
    name = "mixup"
    description = "Mixup of utterance embeddings and their labels (lambda ~ Beta(alpha, alpha))."

    class Options(Options):
        alpha: float = Field(0.2, gt=0, description="Beta distribution parameter.")

    def mix(self):
        import numpy as np
        import torch

        def mix(emb, y, gen):
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            lam = float(rng.beta(self.options.alpha, self.options.alpha))
            lam = max(lam, 1 - lam)  # the first utterance dominates: its label stays the main one
            perm = torch.randperm(emb.shape[0], generator=gen).to(emb.device)
            return lam * emb + (1 - lam) * emb[perm], y[perm], lam

        return mix


class Speed(_Augmentation):
    name = "speed"
    description = "Speed perturbation approximated on frame features (time stretch; needs --pool none features)."

    class Options(Options):
        low: float = Field(0.9, gt=0, description="Slowest speed factor.")
        high: float = Field(1.1, gt=0, description="Fastest speed factor.")

        @model_validator(mode="after")
        def _ordered(self):
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    def fit(self, trainer: TrainerAPI, real: Examples, synthetic: Examples, val: Examples) -> HeadModule:
        from sercli.features.read import feature_meta

        if feature_meta(real.records).get("level") != "frame":
            raise SercliError("strategy 'speed' stretches frame sequences: extract features with --pool none")
        return super().fit(trainer, real, synthetic, val)

    def augment(self, model, x, lengths, y, gen):
        import torch
        from torch.nn import functional as F

        B, L, T, D = x.shape
        factors = self.options.low + (self.options.high - self.options.low) * torch.rand(B, generator=gen)
        new_len = [max(1, int(round(int(n) / float(f)))) for n, f in zip(lengths, factors)]
        out = x.new_zeros(B, L, max(new_len), D)
        for b in range(B):
            seq = x[b, :, : int(lengths[b]), :].permute(0, 2, 1)  # (L, D, T): interpolate over time
            out[b, :, : new_len[b], :] = F.interpolate(seq, size=new_len[b], mode="linear", align_corners=False).permute(0, 2, 1)
        return out, torch.tensor(new_len, device=lengths.device)
