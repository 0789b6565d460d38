"""WA, UA, macro-F1 and the confusion matrix (scikit-learn), as the SER literature defines them.

WA (weighted accuracy) is plain accuracy over utterances; UA (unweighted accuracy) is the
mean of per-class recalls, so every emotion counts the same however rare it is.
"""

from __future__ import annotations

from typing import Any, Sequence


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    idx = list(range(len(labels)))
    present = sorted(set(y_true))
    recalls = recall_score(y_true, y_pred, labels=idx, average=None, zero_division=0)
    return {
        "n": len(y_true),
        "WA": float(accuracy_score(y_true, y_pred)),
        # mean recall over the classes present in the test set (sklearn's balanced accuracy,
        # without its warning when a fold's test speaker lacks a class the model predicts)
        "UA": float(sum(recalls[i] for i in present) / len(present)) if present else 0.0,
        "macro_F1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "recall": {labels[i]: float(recalls[i]) for i in present},
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def metrics_table(metrics: dict[str, Any], title: str = "Evaluation"):
    """A rich renderable: headline numbers, per-class recall and the confusion matrix."""
    from rich.console import Group
    from rich.table import Table

    head = Table(title=title)
    for col in ("n", "WA", "UA", "macro-F1"):
        head.add_column(col, justify="right")
    head.add_row(
        str(metrics["n"]), f"{metrics['WA']:.4f}", f"{metrics['UA']:.4f}", f"{metrics['macro_F1']:.4f}"
    )
    labels = metrics["labels"]
    cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("true \\ pred")
    for lab in labels:
        cm.add_column(lab[:8], justify="right")
    cm.add_column("recall", justify="right")
    for lab, row in zip(labels, metrics["confusion"]):
        rec = metrics["recall"].get(lab)
        cm.add_row(lab, *[str(v) for v in row], "-" if rec is None else f"{rec:.3f}")
    return Group(head, cm)
