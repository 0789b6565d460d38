"""The downstream head: layer weighting, linear projection, pooling, classifier.

Frame features (B, L, T, D) and utterance features (T == 1) go through the same module:
a softmax-weighted sum over layers (SUPERB-style, learnt), per-layer standardisation with
training statistics, a two-layer projection per frame, masked pooling over frames (mean, or
mean and standard deviation: statistics pooling), and a linear classifier. For T == 1 this is
an MLP; with ``hidden=0`` there is no projection and the head is a linear classifier on the
(pooled) standardised features, the neural counterpart of the classic linear SVM.
"""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    def __init__(
        self, num_layers: int, dim: int, num_classes: int, hidden: int = 256, dropout: float = 0.2,
        pool: str = "mean",
    ):
        super().__init__()
        if pool not in ("mean", "mean+std"):
            raise ValueError(f"pool {pool!r}: expected mean or mean+std")
        self.config = dict(
            num_layers=num_layers, dim=dim, num_classes=num_classes, hidden=hidden, dropout=dropout, pool=pool
        )
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.register_buffer("mean", torch.zeros(num_layers, dim))
        self.register_buffer("std", torch.ones(num_layers, dim))
        if hidden:
            self.proj = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
            )
        else:
            self.proj = nn.Identity()
        self.embed_dim = (hidden or dim) * (2 if pool == "mean+std" else 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, num_classes))

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) features -> (B, embed_dim) utterance embeddings."""
        x = (x - self.mean[None, :, None, :]) / self.std[None, :, None, :]
        x = torch.einsum("bltd,l->btd", x, self.layer_weights())
        h = self.proj(x)
        mask = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)[..., None]
        count = mask.sum(1).clamp(min=1)
        mean = (h * mask).sum(1) / count
        if self.config["pool"] == "mean":
            return mean
        var = (((h - mean[:, None, :]) ** 2) * mask).sum(1) / count
        return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=-1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x, lengths))
