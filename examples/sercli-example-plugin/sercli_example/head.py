"""Head `last-layer`: logistic regression on the mean of the last layer's frames."""

from __future__ import annotations

from pydantic import Field

from sercli.api import Head, Options


class LastLayer(Head):
    name = "last-layer"
    description = "A linear classifier on the last layer, averaged over frames (example plugin)."

    class Options(Options):
        dropout: float = Field(0.0, ge=0.0, le=0.9, description="Dropout on the pooled features.")

    def build(self, num_layers, dim, num_classes):
        from torch import nn

        from sercli.api import HeadModule

        class Module(HeadModule):
            def __init__(self, dropout):
                super().__init__(num_layers, dim, num_classes)
                self.embed_dim = dim
                self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

            def embed(self, x, lengths):  # x: (batch, layers, frames, dim), z-scored below
                return self.stats_pool(self.standardise(x)[:, -1], lengths, "mean")

        return Module(self.options.dropout)

    def search_space(self):
        return {"dropout": [0.0, 0.2, 0.5]}
