"""The module every head builds (``sercli.base.Head.build``): what the Trainer, the strategies,
evaluation and prediction rely on, whatever the head does inside.

Features come in as (B, L, T, D): L layers, T frames (padding past ``lengths``), D dimensions;
utterance features have T == 1. A head standardises them per layer and dimension with the
training statistics in its ``mean`` and ``std`` buffers (``standardise``), turns them into one
embedding per utterance (``embed``, (B, E)) and classifies that (``classifier``, E -> C). The
helpers (``mix_layers``, ``frame_mask``, ``stats_pool``) are what most heads share.
"""

from __future__ import annotations


import numpy as np
from typing import Any

import torch
from torch import nn


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) float mask: 1 on real frames, 0 on padding."""
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]).float()


def stats_pool(h: torch.Tensor, lengths: torch.Tensor, pool: str = "mean",
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, E) -> (B, E) mean, or (B, 2E) mean and standard deviation ("mean+std"), over the real
    frames; with ``weights`` (B, T) summing to 1 over them, the weighted statistics (attentive
    statistics pooling)."""
    mask = frame_mask(lengths, h.shape[1]).to(h.dtype)
    w = mask / mask.sum(1, keepdim=True).clamp(min=1) if weights is None else weights * mask
    w = w[..., None]
    mean = (h * w).sum(1)
    if pool == "mean":
        return mean
    var = (((h - mean[:, None, :]) ** 2) * w).sum(1)
    return torch.cat([mean, torch.sqrt(var.clamp(min=0) + 1e-6)], dim=-1)


class HeadModule(nn.Module):
    """Base of every head's module. Subclasses set ``classifier`` and ``embed_dim`` and define
    ``embed``; ``config`` is filled in by sercli (name, options, num_layers, dim, num_classes)
    so that a run folder can rebuild the same module."""

    def __init__(self, num_layers: int, dim: int, num_classes: int):
        super().__init__()
        self.config: dict[str, Any] = dict(num_layers=num_layers, dim=dim, num_classes=num_classes)
        self.register_buffer("mean", torch.zeros(num_layers, dim))
        self.register_buffer("std", torch.ones(num_layers, dim))
        self.embed_dim = 0
        self.classifier: nn.Module = nn.Identity()

    # the shared helpers, reachable from a plugin through ``sercli.api.HeadModule``
    frame_mask = staticmethod(frame_mask)
    stats_pool = staticmethod(stats_pool)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) -> z-scores with the training statistics (identity before they are set)."""
        return (x - self.mean[None, :, None, :]) / self.std[None, :, None, :]

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) features, (B,) lengths in frames -> (B, embed_dim) utterance embeddings."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x, lengths))

    def layer_weights(self) -> torch.Tensor | None:
        """The weight of each layer where the head learns them (a ``layer_logits`` parameter of
        shape (L,), softmax-normalised: SUPERB's featurizer); None otherwise."""
        logits = getattr(self, "layer_logits", None)
        return torch.softmax(logits, dim=0) if logits is not None else None

    def mix_layers(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) -> (B, T, D): the sum over layers weighted by ``layer_weights``."""
        return torch.einsum("bltd,l->btd", x, self.layer_weights())


def probabilities(model, examples, batch_size: int, device: str = "cpu") -> np.ndarray:
    """Class probabilities (N, C) of ``examples`` (anything with ``len`` and ``features(i)``:
    `Examples`, `Arrays`), in batches of ``batch_size`` padded along frames; a model with
    dimensional targets (``config["targets"]``, K of them) gives (N, C + K): its K predicted
    values, on the targets' own scale, after the C probabilities (C = 0 for a regression-only
    head). The one inference path: training's validation, `eval` and `predict` all go through it."""
    import torch

    model.eval()
    k = len(model.config.get("targets") or [])
    c = int(model.config["num_classes"]) - k
    out = []
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            feats = [examples.features(i) for i in range(start, min(start + batch_size, len(examples)))]
            lengths = [f.shape[1] for f in feats]
            L, _, D = feats[0].shape
            x = np.zeros((len(feats), L, max(lengths), D), dtype=np.float32)
            for b, f in enumerate(feats):
                x[b, :, : f.shape[1]] = f
            raw = model(torch.from_numpy(x).to(device), torch.tensor(lengths).to(device))
            parts = [torch.softmax(raw[:, :c], -1)] if c else []
            if k:  # the head learns z-scores of the targets (training statistics): back to their scale
                mean, std = (torch.tensor(model.config[key], dtype=raw.dtype, device=raw.device)
                             for key in ("target_mean", "target_std"))
                parts.append(raw[:, c:] * std + mean)
            out.append(torch.cat(parts, -1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.config["num_classes"]), dtype=np.float32)


def set_targets(model: HeadModule, targets: list[str], mean, std) -> HeadModule:
    """Record in ``model.config`` the dimensional targets its last len(targets) outputs predict,
    and the training statistics they are learnt in z-scores of (kept in the run's config.json)."""
    model.config.update(targets=list(targets), target_mean=[float(v) for v in mean],
                        target_std=[float(v) for v in std])
    return model
