"""The PNG figures of a run: the confusion matrix of its test predictions and each job's
training curves (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(metrics: dict[str, Any], path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with the counts written in."""
    import numpy as np

    plt = _pyplot()
    labels = metrics["labels"]
    cm = np.asarray(metrics["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 1.2 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"{title}\nWA {metrics['WA']:.3f}  UA {metrics['UA']:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="recall")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Train loss, validation loss and validation UA per epoch, stages shaded apart."""
    plt = _pyplot()
    if not history:
        return
    x = list(range(1, len(history) + 1))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(x, [h["train_loss"] for h in history], label="train loss")
    ax1.plot(x, [h["val_loss"] for h in history], label="val loss")
    ax2.plot(x, [h["val_UA"] for h in history], label="val UA", color="tab:green")
    start = 0
    for k in range(1, len(history) + 1):  # a vertical line and a name per training stage
        if k == len(history) or history[k]["stage"] != history[start]["stage"]:
            for ax in (ax1, ax2):
                if start:
                    ax.axvline(start + 0.5, color="grey", lw=0.8, ls="--")
            ax2.text(start + 1, 0.02, history[start]["stage"], fontsize=7, rotation=90, va="bottom",
                     transform=ax2.get_xaxis_transform())
            start = k
    ax1.set_xlabel("epoch")
    ax2.set_xlabel("epoch")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    ax2.set_ylim(0, 1)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
