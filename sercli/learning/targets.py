"""Dimensional targets in training (`sercli train --target arousal,valence`): the heads' last K
outputs predict the targets in z-scores of the training part's statistics (a concordance loss
does not care about the scale, but the optimiser does), with the CCC loss the dimensional
challenges train with, beside cross-entropy for a multi-task head.

The loss of a batch is the mean over dimensions of 1 - CCC (Lin's concordance correlation of
the batch's predictions and values, population moments): it rewards getting the spread and the
mean right as well as the order, which a mean squared error would trade away for shrinking
towards the mean. Early stopping keeps the epoch with the best validation score: the mean CCC
over dimensions (for a multi-task head, the mean of that and the UA).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sercli.core.errors import SercliError


def ccc_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over the K dimensions of 1 - CCC, for (B, K) predictions and values."""
    mp, mt = pred.mean(0), true.mean(0)
    cov = ((pred - mp) * (true - mt)).mean(0)
    denominator = pred.var(0, unbiased=False) + true.var(0, unbiased=False) + (mp - mt) ** 2
    return (1 - 2 * cov / denominator.clamp(min=1e-8)).mean()


def stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per dimension of the training values (std 1 for a constant dimension)."""
    v = np.asarray(values, dtype=np.float64)
    std = v.std(0)
    return v.mean(0), np.where(std > 1e-8, std, 1.0)


def batch_values(model, data, idx: list[int], device: str) -> torch.Tensor:
    """The (B, K) target values of a batch, in the model's z-scores."""
    mean = torch.tensor(model.config["target_mean"], dtype=torch.float32)
    std = torch.tensor(model.config["target_std"], dtype=torch.float32)
    return ((torch.from_numpy(np.asarray(data.values[idx], dtype=np.float32)) - mean) / std).to(device)


def check_hooks(hooks: Any) -> None:
    """Mixup mixes class labels: there is no class to mix in a regression run."""
    if hooks is not None and hooks.mix is not None:
        raise SercliError("mixup mixes the labels of classes; with --target it has no classes to mix: use another "
                          "strategy (real-only, mix, noise, specaugment, speed...)")


def evaluate(outputs: np.ndarray, data, labels: list[str], targets: list[str]) -> tuple[float, dict[str, Any]]:
    """(loss, metrics) of a model's outputs (`sercli.learning.model.probabilities`) on ``data``:
    classification metrics on the first len(labels) columns (when any), CCC, r and RMSE per
    target on the others; ``score`` is what early stopping and the searches maximise."""
    from sercli.core.metrics import compute_metrics, regression_metrics

    c = len(labels)
    metrics: dict[str, Any] = {}
    loss = 0.0
    if c:
        y = np.asarray(data.labels)
        probs = outputs[:, :c]
        loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean()) if len(y) else 0.0
        metrics.update(compute_metrics(y.tolist(), probs.argmax(1).tolist(), labels))
    dims = regression_metrics(data.values, outputs[:, c:], targets)
    loss += 1.0 - dims["CCC"]
    metrics.update({k: v for k, v in dims.items() if k != "n" or not c})
    metrics["score"] = (metrics["UA"] + dims["CCC"]) / 2 if c else dims["CCC"]
    return loss, metrics
