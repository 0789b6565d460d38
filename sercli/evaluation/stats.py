"""The statistics every evaluation shares: mean, std and 95% interval over folds x seeds, and
paired tests per fold between two runs (any metric: UA, or a dimension's CCC)."""

from __future__ import annotations

import hashlib
import math
from typing import Any


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, sample std and a 95% t-interval of the mean.

    Folds x seeds are not independent draws (folds share training speakers), so the interval
    is indicative, as in the SER literature, not exact.
    """
    from scipy import stats

    n = len(values)
    mean = sum(values) / n if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "std": 0.0, "ci95": [mean, mean]}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def _test_hash(predictions: list[dict[str, Any]]) -> str:
    ids = sorted(str(p["id"]) for p in predictions)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def per_fold(agg: dict[str, Any], metric: str = "UA") -> dict[str, tuple[str, float]]:
    """fold -> (test hash, metric averaged over seeds)."""
    out: dict[str, list] = {}
    for j in agg["jobs"]:
        out.setdefault(j["fold"], [j["test_hash"], []])[1].append(j[metric])
    return {f: (h, sum(v) / len(v)) for f, (h, v) in out.items()}


def paired_tests(base: dict[str, Any], other: dict[str, Any], metric: str = "UA") -> dict[str, Any]:
    """Wilcoxon signed-rank and paired t-test on per-fold ``metric`` (mean over seeds),
    over the folds that have the same test utterances in both runs."""
    from scipy import stats

    a, b = per_fold(base, metric), per_fold(other, metric)
    common = sorted(f for f in a if f in b and a[f][0] == b[f][0])
    x = [a[f][1] for f in common]
    y = [b[f][1] for f in common]
    out: dict[str, Any] = {"n_folds": len(common), "delta": (sum(y) - sum(x)) / len(common) if common else None,
                           "wilcoxon_p": None, "ttest_p": None}
    if len(common) >= 2 and any(u != v for u, v in zip(x, y)):
        out["wilcoxon_p"] = float(stats.wilcoxon(y, x).pvalue)
        out["ttest_p"] = float(stats.ttest_rel(y, x).pvalue)
    return out


