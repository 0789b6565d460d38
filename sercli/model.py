"""The downstream head: layer weighting, linear projection, pooling, classifier.

Frame features (B, L, T, D) and utterance features (T == 1) go through the same module:
a softmax-weighted sum over layers (SUPERB-style, learnt), per-layer standardisation with
training statistics, a two-layer projection per frame, masked mean pooling over frames,
and a linear classifier. For T == 1 this is an MLP.
"""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    def __init__(self, num_layers: int, dim: int, num_classes: int, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        self.config = dict(num_layers=num_layers, dim=dim, num_classes=num_classes, hidden=hidden, dropout=dropout)
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.register_buffer("mean", torch.zeros(num_layers, dim))
        self.register_buffer("std", torch.ones(num_layers, dim))
        self.proj = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, T, D) features -> (B, hidden) utterance embeddings."""
        x = (x - self.mean[None, :, None, :]) / self.std[None, :, None, :]
        x = torch.einsum("bltd,l->btd", x, self.layer_weights())
        h = self.proj(x)
        mask = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x, lengths))
