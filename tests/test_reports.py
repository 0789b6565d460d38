"""Aggregates over folds x seeds, comparisons with paired tests, and the PNG figures."""

from __future__ import annotations

import pytest

from sercli.core.metrics import compute_metrics
from sercli.commands.tables import compare_table
from sercli.evaluation.evaluate import aggregate, compare, paired_tests, summary
from sercli.evaluation.figures import confusion_png, training_curves

LABELS = ["angry", "happy", "sad"]


def run(offsets, seeds=(0, 1), strategy="real-only"):
    """A fake evaluated run: fold k's seed-s predictions are right for offsets[k] + s of 6 items."""
    results = []
    for k, good in enumerate(offsets):
        for s in seeds:
            preds = []
            for i in range(6):
                true = LABELS[i % 3]
                preds.append({"id": f"f{k}-{i}", "emotion": true,
                              "predicted": true if i < good + s else LABELS[(i + 1) % 3]})
            y = [LABELS.index(p["emotion"]) for p in preds]
            p = [LABELS.index(p["predicted"]) for p in preds]
            results.append(({"name": f"fold-{k:02d}-seed-{s}", "fold": f"fold-{k:02d}", "seed": s},
                            compute_metrics(y, p, LABELS), preds))
    return aggregate(results, LABELS, {"plugin": strategy, "options": {}}, "loso")


def test_summary_interval():
    s = summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    assert s["ci95"] == pytest.approx([0.6 - 4.303 * 0.1 / 3**0.5, 0.6 + 4.303 * 0.1 / 3**0.5], abs=1e-3)
    assert summary([0.4]) == {"n": 1, "mean": 0.4, "std": 0.0, "ci95": [0.4, 0.4]}


def test_aggregate_pools_every_prediction():
    agg = run([2, 3, 4])
    assert agg["n_jobs"] == 6 and agg["n_folds"] == 3 and agg["seeds"] == [0, 1]
    assert agg["pooled"]["n"] == 36
    assert agg["pooled"]["WA"] == pytest.approx(sum(g + s for g in (2, 3, 4) for s in (0, 1)) / 36)
    assert agg["WA"]["mean"] == pytest.approx(agg["pooled"]["WA"])  # equal-size folds


def test_paired_tests_against_the_first_run():
    base = run([1, 2, 3, 2, 1, 2])
    better = run([3, 4, 4, 3, 3, 4], strategy="mix")
    tests = paired_tests(base, better)
    assert tests["n_folds"] == 6 and tests["delta"] > 0
    assert tests["wilcoxon_p"] == pytest.approx(0.03125)  # exact: all 6 folds better
    assert tests["ttest_p"] < 0.01
    assert paired_tests(base, base)["wilcoxon_p"] is None  # no differences: no test
    rows = compare([("a", base), ("b", better)])
    assert "vs_first" not in rows[0] and rows[1]["vs_first"] == tests
    assert rows[1]["strategy"] == "mix"
    compare_table(rows)  # renders


def test_folds_with_other_test_items_are_not_paired():
    base = run([1, 2])
    other = run([2, 3])
    other["jobs"][0]["test_hash"] = "different"
    other["jobs"][1]["test_hash"] = "different"
    assert paired_tests(base, other)["n_folds"] == 1


def test_figures(tmp_path):
    agg = run([2, 3])
    confusion_png(agg["pooled"], tmp_path / "cm.png", title="test")
    history = [{"stage": st, "epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "val_UA": 0.3 + e / 20}
               for st in ("real", "stage 1/2") for e in range(4)]
    training_curves(history, tmp_path / "curves.png", title="curriculum")
    for name in ("cm.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
