"""What the commands show on stderr: rich tables of evaluations and comparisons (the engine
returns numbers; only the commands' layer draws them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.evaluate import METRICS


def wide_console():
    """The stderr console, but 200 columns wide when stderr is a file or a pipe (rich would
    squeeze a wide table into 80 there)."""
    from rich.console import Console

    from sercli.log import console

    return console if console.is_terminal else Console(stderr=True, highlight=False, width=200)


def aggregate_table(agg: dict[str, Any], title: str):
    from rich.console import Group
    from rich.table import Table

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
    absent = metrics.get("classes_absent")
    if absent:
        head.caption = f"no test items of {', '.join(absent)}: UA and macro-F1 average over the other emotions"
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
