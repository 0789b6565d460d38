"""Reports of runs: aggregates over folds x seeds, side-by-side comparisons with confidence
intervals and paired tests, and the PNG figures (matplotlib, Agg backend: no display needed).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

METRICS = ("UA", "WA", "macro_F1")


# -- numbers ------------------------------------------------------------------------------------

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


def aggregate(results, labels: list[str], strategy: dict[str, Any], protocol: str) -> dict[str, Any]:
    """``results``: [(job, metrics, predictions)] -> the run's metrics.json."""
    from sercli.metrics import compute_metrics

    jobs = []
    y_true, y_pred = [], []
    index = {lab: i for i, lab in enumerate(labels)}
    for job, metrics, predictions in results:
        jobs.append({
            "name": job["name"], "fold": job["fold"], "seed": job["seed"], "n": metrics["n"],
            **{m: metrics[m] for m in METRICS}, "test_hash": _test_hash(predictions),
            # emotions without test items: UA and macro-F1 of this job average over the others
            "classes_absent": metrics.get("classes_absent", []),
        })
        y_true += [index[p["emotion"]] for p in predictions]
        y_pred += [index[p["predicted"]] for p in predictions]
    return {
        "strategy": strategy,
        "protocol": protocol,
        "n_jobs": len(jobs),
        "n_folds": len({j["fold"] for j in jobs}),
        "seeds": sorted({j["seed"] for j in jobs}),
        **{m: summary([j[m] for j in jobs]) for m in METRICS},
        # Every test prediction of every fold and seed together: each seed sees each test
        # utterance once, so pooled WA/UA equal their means over seeds of per-seed pooled values.
        "pooled": compute_metrics(y_true, y_pred, labels),
        "jobs": jobs,
    }


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


def compare(aggs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows for `sercli eval --compare`: every run against the first one."""
    base = aggs[0][1]
    rows = []
    for k, (name, agg) in enumerate(aggs):
        row = {
            "run": name,
            "strategy": strategy_label(agg["strategy"]),
            "n_folds": agg["n_folds"], "n_jobs": agg["n_jobs"],
            **{m: {key: agg[m][key] for key in ("mean", "std", "ci95")} for m in METRICS},
            "pooled_UA": agg["pooled"]["UA"], "pooled_WA": agg["pooled"]["WA"],
        }
        if k:
            row["vs_first"] = paired_tests(base, agg)
        rows.append(row)
    return rows


def strategy_label(strategy: dict[str, Any]) -> str:
    """``mix (ratio=0.5)``: the name and the options that differ from the plugin's defaults."""
    from sercli import plugins as pl
    from sercli.errors import SercliError

    name = strategy.get("plugin") or strategy.get("name", "?")
    opts = strategy.get("options") or {}
    try:
        defaults = pl.get_class("strategy", name).Options().model_dump(mode="json")
    except SercliError:  # a plugin no longer installed: show every option
        defaults = {}
    shown = {k: v for k, v in sorted(opts.items()) if k not in defaults or defaults[k] != v}
    return name + (" (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "")


# -- rich tables (stderr) -----------------------------------------------------------------------

def wide_console():
    """The stderr console, but 200 columns wide when stderr is a file or a pipe (rich would
    squeeze a wide table into 80 there)."""
    from rich.console import Console

    from sercli.log import console

    return console if console.is_terminal else Console(stderr=True, highlight=False, width=200)


def aggregate_table(agg: dict[str, Any], title: str):
    from rich.console import Group
    from rich.table import Table

    from sercli.metrics import metrics_table

    jobs = Table(title=title)
    for col in ("fold", "seed", "n", "WA", "UA", "macro-F1"):
        jobs.add_column(col, justify="right")
    for j in agg["jobs"]:
        mark = "*" if j.get("classes_absent") else ""
        jobs.add_row(j["fold"] + mark, str(j["seed"]), str(j["n"]), f"{j['WA']:.4f}", f"{j['UA']:.4f}", f"{j['macro_F1']:.4f}")
    if any(j.get("classes_absent") for j in agg["jobs"]):
        jobs.caption = "* the test part lacks some emotions: UA and macro-F1 average over those it has"
    summ = Table(title=f"{agg['n_folds']} folds x {len(agg['seeds'])} seeds")
    for col in ("", "mean", "std", "95% CI"):
        summ.add_column(col, justify="right")
    for m in METRICS:
        s = agg[m]
        summ.add_row(m, f"{s['mean']:.4f}", f"{s['std']:.4f}", f"[{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}]")
    return Group(jobs, summ, metrics_table(agg["pooled"], title="All test predictions pooled"))


def compare_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    table = Table(title="Runs side by side: UA/WA mean ± std over folds x seeds; ΔUA and p: paired per fold vs the first run")
    for col in ("run", "strategy", "folds x seeds", "UA", "UA 95% CI", "WA", "pooled UA", "pooled WA",
                "ΔUA", "p Wilcoxon", "p t-test"):
        table.add_column(col, justify="right" if col not in ("run", "strategy") else "left")
    for row in rows:
        ua, wa = row["UA"], row["WA"]
        vs = row.get("vs_first") or {}
        fmt_p = lambda p: "-" if p is None else f"{p:.3g}"  # noqa: E731
        table.add_row(
            Path(row["run"]).name, row["strategy"], f"{row['n_folds']} x {row['n_jobs'] // max(row['n_folds'], 1)}",
            f"{ua['mean']:.4f} ± {ua['std']:.4f}", f"{ua['ci95'][0]:.4f}-{ua['ci95'][1]:.4f}",
            f"{wa['mean']:.4f} ± {wa['std']:.4f}", f"{row['pooled_UA']:.4f}", f"{row['pooled_WA']:.4f}",
            "-" if vs.get("delta") is None else f"{vs['delta']:+.4f}",
            fmt_p(vs.get("wilcoxon_p")), fmt_p(vs.get("ttest_p")),
        )
    return table


# -- figures ------------------------------------------------------------------------------------

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
