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


def confusion_png(metrics: dict[str, Any], path: Path, title: str = "", seeds: int = 1) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with the counts written in;
    predictions pooled over ``seeds`` seeds show mean counts per seed (each utterance once)."""
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
            count = cm[i, j] / seeds
            ax.text(j, i, f"{count:.0f}" if seeds == 1 else f"{count:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    per_seed = f" (counts: mean over {seeds} seeds)" if seeds > 1 else ""
    ax.set_title(f"{title}\nWA {metrics['WA']:.3f}  UA {metrics['UA']:.3f}{per_seed}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="recall")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Train loss, validation loss and validation UA (or CCC: `score_key`) per epoch, stages shaded apart."""
    plt = _pyplot()
    if not history:
        return
    key = score_key(history)
    x = list(range(1, len(history) + 1))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(x, [h["train_loss"] for h in history], label="train loss")
    ax1.plot(x, [h["val_loss"] for h in history], label="val loss")
    ax2.plot(x, [h[key] for h in history], label=key.replace("_", " "), color="tab:green")
    start = 0
    for k in range(1, len(history) + 1):  # a vertical line and a name per training stage
        if k == len(history) or history[k]["stage"] != history[start]["stage"]:
            for ax in (ax1, ax2):
                if start:
                    ax.axvline(start + 0.5, color="grey", lw=0.8, ls="--")
            ax2.text(start + 1, 0.02, history[start]["stage"], fontsize=7, rotation=90, va="bottom",
                     transform=ax2.get_xaxis_transform())
            start = k
    for n, k in enumerate(chosen_epochs(history)):  # the epoch early stopping kept, per stage
        for ax in (ax1, ax2):
            ax.axvline(k + 1, color="tab:red", lw=0.9, ls=":", label="chosen epoch" if n == 0 else None)
        ax2.plot([k + 1], [history[k][key]], "o", color="tab:red", ms=4)
    ax1.set_xlabel("epoch")
    ax2.set_xlabel("epoch")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    ax2.set_ylim(min(0.0, min(h[key] for h in history)), 1)  # a CCC can be below 0
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def score_key(history: list[dict[str, Any]]) -> str:
    """What early stopping kept the best of: val_UA, val_CCC (dimensional targets) or val_score
    (a multi-task head: their mean)."""
    first = history[0] if history else {}
    return next((k for k in ("val_score", "val_CCC") if k in first), "val_UA")


def values_png(truth, predicted, targets: list[str], path: Path, title: str = "") -> None:
    """Predicted against true values, one panel per dimensional target, with the identity line
    (where a CCC of 1 puts every point) and each panel's CCC."""
    import numpy as np

    from sercli.core.metrics import ccc

    plt = _pyplot()
    t, p = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.4 * len(targets), 3.4), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], targets)):
        ax.scatter(t[:, k], p[:, k], s=6, alpha=0.35)
        lo, hi = float(min(t[:, k].min(), p[:, k].min())), float(max(t[:, k].max(), p[:, k].max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(f"{name}: CCC {ccc(t[:, k], p[:, k]):.3f}", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chosen_epochs(history: list[dict[str, Any]]) -> list[int]:
    """The (0-based) history index early stopping kept in each training stage (refit stages
    train a fixed number of epochs: none chosen there): the best validation UA, ties to the
    lower validation loss, then the earlier epoch, as sercli.learning.train.Trainer.fit keeps it."""
    out, start, key = [], 0, score_key(history)
    for k in range(1, len(history) + 1):
        if k == len(history) or history[k].get("stage") != history[start].get("stage"):
            stage = history[start:k]
            if not str(stage[0].get("stage", "")).startswith("refit") and all(key in h for h in stage):
                best = max(range(len(stage)), key=lambda i: (stage[i][key], -stage[i].get("val_loss", 0.0), -i))
                out.append(start + best)
            start = k
    return out


def layer_weights_png(weights: dict[str, list[float]], names: list[str], path: Path, title: str = "") -> None:
    """The learnt softmax weight of each backbone layer (heads with ``layer_weights()``), one
    line per job and their mean in bold: which layers the heads listened to."""
    import numpy as np

    plt = _pyplot()
    w = np.asarray(list(weights.values()), dtype=float)
    x = np.arange(w.shape[1])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(x) + 2), 3.2))
    for row in w:
        ax.plot(x, row, color="tab:blue", alpha=0.25, lw=0.8)
    ax.plot(x, w.mean(0), color="tab:blue", lw=2, marker="o", ms=3, label=f"mean of {len(w)} jobs")
    ax.axhline(1 / len(x), color="grey", lw=0.8, ls="--", label="uniform")
    ax.set_xticks(x, names if len(names) == len(x) else [str(i) for i in x], rotation=45 if len(x) > 8 else 0)
    ax.set_xlabel("layer")
    ax.set_ylabel("weight")
    ax.set_ylim(0, max(float(w.max()) * 1.1, 2 / len(x)))
    ax.legend(fontsize=8)
    ax.set_title(title or "Learnt layer weights", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def timeline_png(timelines: list[tuple[str, list[dict[str, Any]]]], labels: list[str], path: Path) -> None:
    """`predict --segments --plot`: one row per recording, time along x; each speech segment is
    a bar from its start to its end, its class probabilities stacked in the classes' colours
    and the predicted emotion written in where it fits."""
    plt = _pyplot()
    colours = {lab: plt.get_cmap("tab10")(i % 10) for i, lab in enumerate(labels)}
    length = max((r["end"] for _, rows in timelines for r in rows), default=1.0)
    fig, axes = plt.subplots(len(timelines), 1, figsize=(min(24.0, 6 + length / 20), 1.2 + 1.6 * len(timelines)),
                             squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], timelines):
        for r in rows:
            bottom = 0.0
            for lab in labels:
                p = float(r["probabilities"].get(lab, 0.0))
                ax.bar(r["start"], p, width=r["end"] - r["start"], bottom=bottom, align="edge", color=colours[lab],
                       edgecolor="none")
                bottom += p
            if (r["end"] - r["start"]) / length > 0.03:
                ax.text((r["start"] + r["end"]) / 2, 1.03, r["predicted"], ha="center", va="bottom", fontsize=7)
        ax.set_xlim(0, length)
        ax.set_ylim(0, 1.25)
        ax.set_yticks([0, 0.5, 1])
        ax.set_ylabel("probability", fontsize=8)
        ax.set_title(Path(name).name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[lab]) for lab in labels]
    fig.legend(handles, labels, loc="upper right", ncol=min(len(labels), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
