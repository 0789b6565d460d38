"""WA, UA, macro-F1 and the confusion matrix (scikit-learn), as the SER literature defines them.

WA (weighted accuracy) is plain accuracy over utterances; UA (unweighted accuracy) is the
mean of per-class recalls, so every emotion counts the same however rare it is.
"""

from __future__ import annotations

from typing import Any, Sequence


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: list[str]) -> dict[str, Any]:
    """``classes_absent``: the labels with no test item, which UA and macro-F1 leave out (a
    test part of one class gives UA = WA = that class's recall: warn wherever that happens)."""
    import warnings

    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    idx = list(range(len(labels)))
    present = sorted(set(y_true))
    if not present:  # nothing to score (callers refuse empty test parts before this)
        return {"n": 0, "WA": 0.0, "UA": 0.0, "macro_F1": 0.0, "recall": {}, "classes_absent": list(labels),
                "labels": labels, "confusion": [[0] * len(labels) for _ in labels]}
    with warnings.catch_warnings():  # sklearn's note on single-label inputs: see classes_absent
        warnings.simplefilter("ignore", UserWarning)
        recalls = recall_score(y_true, y_pred, labels=idx, average=None, zero_division=0)
        macro_f1 = f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        confusion = confusion_matrix(y_true, y_pred, labels=idx).tolist()
    return {
        "n": len(y_true),
        "WA": float(accuracy_score(y_true, y_pred)),
        # mean recall over the classes present in the test set (sklearn's balanced accuracy,
        # without its warning when a fold's test speaker lacks a class the model predicts)
        "UA": float(sum(recalls[i] for i in present) / len(present)),
        "macro_F1": float(macro_f1),
        "recall": {labels[i]: float(recalls[i]) for i in present},
        "classes_absent": [labels[i] for i in idx if i not in present],
        "labels": labels,
        "confusion": confusion,
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
