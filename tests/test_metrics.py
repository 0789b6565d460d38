"""WA, UA, macro-F1 and the confusion matrix (counted with numpy) against scikit-learn's own."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from sercli.core.metrics import compute_metrics

LABELS = ["angry", "happy", "neutral", "sad", "fear"]


def sklearn_metrics(y, p, c):
    present = sorted(set(y))
    recalls = recall_score(y, p, labels=list(range(c)), average=None, zero_division=0)
    return {"WA": accuracy_score(y, p), "UA": float(np.mean([recalls[i] for i in present])),
            "macro_F1": f1_score(y, p, labels=present, average="macro", zero_division=0),
            "confusion": confusion_matrix(y, p, labels=list(range(c))).tolist(),
            "recall": {LABELS[i]: recalls[i] for i in present}}


@pytest.mark.parametrize("case", range(40))
def test_every_figure_equals_scikit_learns(case):
    rng = np.random.default_rng(case)
    c = len(LABELS)
    n = int(rng.integers(1, 60))
    # some cases leave classes out of the truth, or predict one class only, or are all right
    truth_classes = rng.choice(c, size=int(rng.integers(1, c + 1)), replace=False)
    y = rng.choice(truth_classes, size=n).tolist()
    kind = case % 4
    p = (list(y) if kind == 0 else [int(truth_classes[0])] * n if kind == 1
         else rng.integers(0, c, size=n).tolist())
    ours, ref = compute_metrics(y, p, LABELS), sklearn_metrics(y, p, c)
    for key in ("WA", "UA", "macro_F1"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    assert ours["confusion"] == ref["confusion"]
    assert ours["recall"] == pytest.approx(ref["recall"])
    assert ours["classes_absent"] == [LABELS[i] for i in range(c) if i not in set(y)]
    assert ours["n"] == n


def test_a_class_the_truth_lacks_counts_in_f1_and_ua_only_where_present():
    # two of one class right, one wrongly called "sad" (absent from the truth)
    m = compute_metrics([0, 0, 0], [0, 0, 3], LABELS)
    assert m["UA"] == pytest.approx(2 / 3) and m["WA"] == pytest.approx(2 / 3)
    assert m["macro_F1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))  # angry's F1 alone
    assert m["classes_absent"] == ["happy", "neutral", "sad", "fear"]


def test_empty_and_bad_inputs():
    assert compute_metrics([], [], LABELS)["UA"] == 0.0
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0], LABELS)
    with pytest.raises(ValueError):
        compute_metrics([0, 5], [0, 1], LABELS)
