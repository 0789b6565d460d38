"""The torch modules of the built-in heads: each a ``sercli.api.HeadModule`` over (B, L, T, D)
features. Padding frames (past ``lengths``) never change an utterance's output, so that batched
and one-by-one predictions agree."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sercli.api import HeadModule


class MlpModule(HeadModule):
    def __init__(self, num_layers: int, dim: int, num_classes: int, hidden: int, dropout: float, pool: str):
        super().__init__(num_layers, dim, num_classes)
        self.pool = pool
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        if hidden:
            self.proj = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
            )
        else:
            self.proj = nn.Identity()
        self.embed_dim = (hidden or dim) * (2 if pool == "mean+std" else 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, num_classes))

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.mix_layers(self.standardise(x)))
        return self.stats_pool(h, lengths, self.pool)


class LinearModule(HeadModule):
    def __init__(self, num_layers: int, dim: int, num_classes: int, layers: str, pool: str, dropout: float):
        super().__init__(num_layers, dim, num_classes)
        self.layers, self.pool = layers, pool
        if layers == "weighted":
            self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        width = dim * (num_layers if layers == "concat" else 1)
        self.embed_dim = width * (2 if pool == "mean+std" else 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, num_classes))

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.standardise(x)
        if self.layers == "concat":
            B, L, T, D = x.shape
            h = x.permute(0, 2, 1, 3).reshape(B, T, L * D)  # each frame: every layer side by side
        else:
            h = self.mix_layers(x)
        return self.stats_pool(h, lengths, self.pool)


class AttentiveModule(HeadModule):
    def __init__(self, num_layers: int, dim: int, num_classes: int, hidden: int, attention: int, dropout: float):
        super().__init__(num_layers, dim, num_classes)
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU())
        # e_t = v' tanh(W h_t + b): one score per frame (Okabe et al., eq. 1)
        self.attention = nn.Sequential(nn.Linear(hidden, attention), nn.Tanh(), nn.Linear(attention, 1))
        self.embed_dim = 2 * hidden
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, num_classes))

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.mix_layers(self.standardise(x)))
        weights = _masked_softmax(self.attention(h).squeeze(-1), self.frame_mask(lengths, h.shape[1]))
        return self.stats_pool(h, lengths, "mean+std", weights=weights)


class CnnModule(HeadModule):
    def __init__(self, num_layers: int, dim: int, num_classes: int, projector: int, hidden: int, kernel: int,
                 downsample: int, dropout: float):
        super().__init__(num_layers, dim, num_classes)
        self.downsample = downsample
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.projector = nn.Linear(dim, projector)
        self.convs = nn.ModuleList(
            nn.Conv1d(c, hidden, kernel, padding=kernel // 2) for c in (projector, hidden, hidden))
        self.dropout = nn.Dropout(dropout)
        self.attention = nn.Linear(hidden, 1)  # self-attention pooling (Safari et al., 2020)
        self.out = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.embed_dim = hidden
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.projector(self.mix_layers(self.standardise(x))).transpose(1, 2)  # (B, P, T)
        mask = self.frame_mask(lengths, h.shape[-1])
        if self.downsample > 1:
            h, mask = _average_frames(h, mask, self.downsample)
            lengths = mask.sum(1).long()
        for i, conv in enumerate(self.convs):
            h = conv(self.dropout(h * mask[:, None, :]))  # padding reads as the conv's own zeros
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        h = h.transpose(1, 2)  # (B, T, H)
        weights = _masked_softmax(self.attention(h).squeeze(-1), mask)
        return self.out(self.stats_pool(h, lengths, "mean", weights=weights))


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over frames (dim 1) of the real frames only."""
    return torch.softmax(scores.masked_fill(mask == 0, float("-inf")), dim=1)


def _average_frames(h: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, T) -> (B, C, ceil(T / k)): the mean of each k real frames (s3prl's AvgPool1d, without
    counting padding), and the mask of the windows that hold a real frame."""
    pad = (-h.shape[-1]) % k
    h, mask = F.pad(h * mask[:, None, :], (0, pad)), F.pad(mask, (0, pad))
    sums = h.reshape(h.shape[0], h.shape[1], -1, k).sum(-1)
    counts = mask.reshape(mask.shape[0], -1, k).sum(-1)
    return sums / counts.clamp(min=1)[:, None, :], (counts > 0).to(mask.dtype)
