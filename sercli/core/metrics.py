"""WA, UA, macro-F1 and the confusion matrix, as the SER literature defines them.

WA (weighted accuracy) is plain accuracy over utterances; UA (unweighted accuracy) is the
mean of per-class recalls, so every emotion counts the same however rare it is.

All of them come from one confusion matrix counted with numpy (``np.bincount``), not from
scikit-learn's metric functions: those validate their inputs on every call (about 13 ms each
here), and early stopping scores the validation part once per epoch, so they took more than
half of a head's training time. tests/test_metrics.py checks every figure against
scikit-learn's ``recall_score``, ``f1_score``, ``accuracy_score`` and ``confusion_matrix``.
"""

from __future__ import annotations

from typing import Any, Sequence


def confusion(y_true: Sequence[int], y_pred: Sequence[int], classes: int):
    """The (classes, classes) count matrix: rows the truth, columns the prediction (int64);
    ValueError for a label outside 0 .. classes-1 or inputs of different lengths."""
    import numpy as np

    t, p = np.asarray(y_true, dtype=np.int64).ravel(), np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{len(t)} true labels but {len(p)} predictions")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= classes):
        raise ValueError(f"a label outside 0..{classes - 1}")
    return np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    """``classes_absent``: the labels with no test item, which UA and macro-F1 leave out (a
    test part of one class gives UA = WA = that class's recall: warn wherever that happens)."""
    import numpy as np

    c = len(labels)
    cm = confusion(y_true, y_pred, c)
    support = cm.sum(1)
    present = [i for i in range(c) if support[i]]
    if not present:  # nothing to score (callers refuse empty test parts before this)
        return {"n": 0, "WA": 0.0, "UA": 0.0, "macro_F1": 0.0, "recall": {}, "classes_absent": list(labels),
                "labels": labels, "confusion": [[0] * c for _ in labels]}
    tp = np.diag(cm).astype(np.float64)
    recalls = tp / np.maximum(support, 1)
    # F1 = 2 tp / (2 tp + fp + fn), 0 where a class is never right (scikit-learn's zero_division=0)
    denominator = 2 * tp + (cm.sum(0) - tp) + (support - tp)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(c), where=denominator > 0)
    return {
        "n": int(support.sum()),
        "WA": float(tp.sum() / support.sum()),
        # mean recall over the classes present in the test set (balanced accuracy, without a
        # warning when a fold's test speaker lacks a class the model predicts)
        "UA": float(np.mean(recalls[present])),
        "macro_F1": float(np.mean(f1[present])),
        "recall": {labels[i]: float(recalls[i]) for i in present},
        "classes_absent": [labels[i] for i in range(c) if i not in present],
        "labels": labels,
        "confusion": cm.tolist(),
    }


def mcnemar(first_correct: Sequence[bool], second_correct: Sequence[bool]) -> dict[str, Any]:
    """McNemar's exact test of two classifiers on the same test items (a single split, where a
    per-fold test has nothing to pair): of the items exactly one of them gets right,
    ``only_first`` and ``only_second``; ``p`` is the two-sided exact binomial probability of a
    split at least that uneven if both were equally good (1.0 when they never disagree)."""
    from scipy.stats import binomtest

    if len(first_correct) != len(second_correct):
        raise ValueError("McNemar's test needs the same items for both classifiers")
    b = sum(1 for x, y in zip(first_correct, second_correct) if x and not y)
    c = sum(1 for x, y in zip(first_correct, second_correct) if y and not x)
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"n": len(first_correct), "only_first": b, "only_second": c, "p": p}


# -- dimensional targets (`sercli train --target arousal,valence`) ---------------------------

# per dimension, in this order: Lin's concordance correlation, Pearson's r, the root mean squared error
DIMENSION_METRICS = ("CCC", "r", "RMSE")


def ccc(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient (Lin, 1989), with population moments:
    2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2). Unlike Pearson's r it is 1 only
    when the predictions equal the truth (r is 1 for any increasing straight line); the
    challenges on MSP-Podcast and IEMOCAP rank by it. 0.0 when both are constant and apart."""
    import numpy as np

    x, y = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if not len(x):
        return 0.0
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    denominator = x.var() + y.var() + (mx - my) ** 2
    return float(2 * cov / denominator) if denominator > 0 else 1.0


def pearson(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Pearson's r (scipy); 0.0 where either side is constant (r is undefined there)."""
    import numpy as np
    from scipy.stats import pearsonr

    x, y = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(pearsonr(x, y)[0])


def dimension_names(targets: list[str]) -> list[str]:
    """The metric names of ``targets``: ``CCC`` (the mean over dimensions: the headline), then
    ``CCC_arousal``, ``r_arousal``, ``RMSE_arousal`` ... per dimension."""
    return ["CCC", *(f"{m}_{t}" for t in targets for m in DIMENSION_METRICS)]


def regression_metrics(y_true, y_pred, targets: list[str]) -> dict[str, Any]:
    """CCC, Pearson's r and RMSE of each dimension of ``y_pred`` (N, K) against ``y_true`` (N, K),
    and ``CCC``, their CCC averaged over the dimensions."""
    import numpy as np

    t, p = np.asarray(y_true, dtype=np.float64).reshape(-1, len(targets)), np.asarray(y_pred, dtype=np.float64).reshape(-1, len(targets))
    out: dict[str, Any] = {"n": len(t), "targets": list(targets)}
    for k, name in enumerate(targets):
        out[f"CCC_{name}"] = ccc(t[:, k], p[:, k])
        out[f"r_{name}"] = pearson(t[:, k], p[:, k])
        out[f"RMSE_{name}"] = float(np.sqrt(np.mean((t[:, k] - p[:, k]) ** 2))) if len(t) else 0.0
    out["CCC"] = float(np.mean([out[f"CCC_{name}"] for name in targets])) if targets else 0.0
    return out
