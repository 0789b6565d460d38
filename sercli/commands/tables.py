"""What the commands show on stderr: rich tables of evaluations and comparisons (the engine
returns numbers; only the commands' layer draws them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.evaluation.evaluate import METRICS
from sercli.evaluation.describe import _options_text, describe_run, seeds_of  # noqa: F401


def wide_console():
    """The stderr console, but 200 columns wide when stderr is a file or a pipe (rich would
    squeeze a wide table into 80 there)."""
    from rich.console import Console

    from sercli.core.log import console

    return console if console.is_terminal else Console(stderr=True, highlight=False, width=200)


def aggregate_table(agg: dict[str, Any], title: str):
    from rich.console import Group
    from rich.table import Table

    if agg.get("targets"):
        return values_table(agg, title)
    jobs = Table(title=title)
    for col in ("fold", "seed", "n", "WA", "UA", "macro-F1"):
        jobs.add_column(col, justify="right")
    for j in agg["jobs"]:
        mark = "*" if j.get("classes_absent") else ""
        jobs.add_row(j["fold"] + mark, str(j["seed"]), str(j["n"]), f"{j['WA']:.4f}", f"{j['UA']:.4f}", f"{j['macro_F1']:.4f}")
    if any(j.get("classes_absent") for j in agg["jobs"]):
        jobs.caption = "* the test part lacks some emotions: UA and macro-F1 average over those it has"
    summ = Table(title=f"{agg['n_folds']} folds x {len(agg['seeds'])} seeds"
                 + (" (ensembled: one model per fold)" if agg.get("ensemble_seeds") else ""))
    for col in ("", "mean", "std", "95% CI"):
        summ.add_column(col, justify="right")
    for m in METRICS:
        s = agg[m]
        ci = _ci({**s, "n": len(agg["jobs"])}, ", ")
        summ.add_row(m, f"{s['mean']:.4f}", "-" if len(agg["jobs"]) < 2 else f"{s['std']:.4f}",
                     ci if ci == "-" else f"[{ci}]")
    return Group(jobs, summ, metrics_table(agg["pooled"], title="All test predictions pooled", seeds=seeds_of(agg)))


def _ci(stat: dict[str, Any], sep: str = "-") -> str:
    """A 95% CI, or "-" for a single job (no interval: one number has no spread)."""
    if stat.get("n", 2) < 2:
        return "-"
    return f"{stat['ci95'][0]:.4f}{sep}{stat['ci95'][1]:.4f}"


def values_table(agg: dict[str, Any], title: str):
    """A run with dimensional targets: CCC, r and RMSE per dimension and job, their mean, std
    and 95% CI over folds x seeds, and the pooled predictions' (a multi-task run: UA and WA too)."""
    from rich.console import Group
    from rich.table import Table

    names = [m for m in agg["metrics"] if m != "macro_F1"]
    jobs = Table(title=title)
    for col in ("fold", "seed", "n", *names):
        jobs.add_column(col, justify="right")
    for j in agg["jobs"]:
        jobs.add_row(j["fold"], str(j["seed"]), str(j["n"]), *(f"{j[m]:.4f}" for m in names))
    summ = Table(title=f"{agg['n_folds']} folds x {len(agg['seeds'])} seeds"
                 + (" (ensembled: one model per fold)" if agg.get("ensemble_seeds") else ""))
    for col in ("", "mean", "std", "95% CI"):
        summ.add_column(col, justify="right")
    one = len(agg["jobs"]) < 2
    for m in agg["metrics"]:
        s = agg[m]
        ci = _ci({**s, "n": len(agg["jobs"])}, ", ")
        summ.add_row(m, f"{s['mean']:.4f}", "-" if one else f"{s['std']:.4f}", ci if ci == "-" else f"[{ci}]")
    pooled = Table(title=f"All test predictions pooled (n = {agg['pooled']['n']})")
    for col in ("target", "CCC", "r", "RMSE"):
        pooled.add_column(col, justify="right")
    for t in agg["targets"]:
        pooled.add_row(t, *(f"{agg['pooled'][f'{m}_{t}']:.4f}" for m in ("CCC", "r", "RMSE")))
    return Group(jobs, summ, pooled)


def compare_values_table(rows: list[dict[str, Any]]):
    """`eval --compare` of runs with dimensional targets: mean CCC and each target's, paired tests."""
    from rich.table import Table

    targets = rows[0]["targets"]
    table = Table(title="Runs side by side: CCC mean ± std over folds x seeds; ΔCCC and p vs the first run "
                        "(Wilcoxon, t-test: paired per fold, on the mean CCC over the targets)")
    for col in ("run", "features", "head", "strategy", "folds x seeds", "CCC", "CCC 95% CI",
                *(f"CCC {t}" for t in targets), "pooled CCC", "ΔCCC", "p Wilcoxon", "p t-test"):
        table.add_column(col, justify="left" if col in ("run", "features", "head", "strategy") else "right")
    fmt_p = lambda p: "-" if p is None else f"{p:.3g}"  # noqa: E731
    for row in rows:
        vs, c = row.get("vs_first") or {}, row["CCC"]
        table.add_row(
            Path(row["run"]).name, row.get("features", "?"), row.get("head", "?"), row["strategy"],
            f"{row['n_folds']} x {row['n_jobs'] // max(row['n_folds'], 1)}", f"{c['mean']:.4f} ± {c['std']:.4f}",
            _ci({**c, "n": row["n_jobs"]}), *(f"{row[f'CCC_{t}']['mean']:.4f}" for t in targets),
            f"{row['pooled_CCC']:.4f}", "-" if vs.get("delta") is None else f"{vs['delta']:+.4f}",
            fmt_p(vs.get("wilcoxon_p")), fmt_p(vs.get("ttest_p")))
    return table


def compare_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    if "targets" in rows[0]:
        return compare_values_table(rows)
    table = Table(title="Runs side by side: UA/WA mean ± std over folds x seeds; ΔUA and p vs the first run "
                        "(Wilcoxon, t-test: paired per fold; McNemar: a single split, per utterance)")
    for col in ("run", "features", "head", "strategy", "folds x seeds", "UA", "UA 95% CI", "WA", "pooled UA",
                "pooled WA", "ΔUA", "p Wilcoxon", "p t-test", "p McNemar"):
        table.add_column(col, justify="left" if col in ("run", "features", "head", "strategy") else "right")
    for row in rows:
        ua, wa = row["UA"], row["WA"]
        vs = row.get("vs_first") or {}
        fmt_p = lambda p: "-" if p is None else f"{p:.3g}"  # noqa: E731
        mc = vs.get("mcnemar")
        table.add_row(
            Path(row["run"]).name, row.get("features", "?"), row.get("head", "?"), row["strategy"],
            f"{row['n_folds']} x {row['n_jobs'] // max(row['n_folds'], 1)}",
            f"{ua['mean']:.4f} ± {ua['std']:.4f}", _ci({**ua, "n": row["n_jobs"]}),
            f"{wa['mean']:.4f} ± {wa['std']:.4f}", f"{row['pooled_UA']:.4f}", f"{row['pooled_WA']:.4f}",
            "-" if vs.get("delta") is None else f"{vs['delta']:+.4f}",
            fmt_p(vs.get("wilcoxon_p")), fmt_p(vs.get("ttest_p")),
            "-" if not mc else f"{mc['p']:.3g} ({mc['only_first']}:{mc['only_second']})",
        )
    confounded = [Path(r["run"]).name for r in rows if r.get("differs_from_first")]
    if confounded:
        table.caption = (f"{', '.join(confounded)}: another head or other features than the first run, so ΔUA "
                         "is not the strategy's effect alone")
    return table


def metrics_table(metrics: dict[str, Any], title: str = "Evaluation", seeds: int = 1):
    """A rich renderable: headline numbers, per-class recall and the confusion matrix (with
    ``seeds`` > 1, pooled over seeds: its counts are divided by the seeds, so each utterance
    counts once)."""
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
    per_seed = f", mean counts over {seeds} seeds" if seeds > 1 else ""
    cm = Table(title=f"Confusion matrix (rows: true, columns: predicted{per_seed})")
    cm.add_column("true \\ pred")
    for lab in labels:
        cm.add_column(lab[:8], justify="right")
    cm.add_column("recall", justify="right")
    for lab, row in zip(labels, metrics["confusion"]):
        rec = metrics["recall"].get(lab)
        cells = [str(v) if seeds == 1 else f"{v / seeds:.1f}" for v in row]
        cm.add_row(lab, *cells, "-" if rec is None else f"{rec:.3f}")
    return Group(head, cm)
