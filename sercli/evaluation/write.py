"""An evaluation written into a folder: metrics (JSON and CSV), the confusion figure and each
job's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.core.fsutil import atomic_write_text
from sercli.core.runfolder import CONFUSION_FILE, VALUES_FILE, METRICS_CSV, METRICS_FILE, PREDICTIONS_FILE, job_folder, write_json, write_jsonl


def write_evaluation(dest: Path, results, agg: dict[str, Any], title: str) -> None:
    """An evaluation into ``dest`` (the run being built, or `eval --out`): metrics.json (and
    the same as a table, metrics.csv), confusion.png, and per job predictions.jsonl (and metrics.json for a job in a subfolder)."""
    from sercli.evaluation.figures import confusion_png

    dest = Path(dest)
    for job, metrics, predictions in results:
        folder = job_folder(dest, job["name"])
        write_jsonl(folder / PREDICTIONS_FILE, predictions)
        if folder != dest:
            write_json(folder / METRICS_FILE, metrics)
    write_json(dest / METRICS_FILE, agg)
    from sercli.evaluation.tabular import metrics_csv

    atomic_write_text(dest / METRICS_CSV, metrics_csv(agg))
    seeds = 1 if agg.get("ensemble_seeds") else max(len(agg.get("seeds") or [1]), 1)
    if agg["pooled"].get("confusion") is not None:  # a classifier (a run with targets only has none)
        confusion_png(agg["pooled"], dest / CONFUSION_FILE, title=title, seeds=seeds)  # each utterance once
    if agg.get("targets"):
        values_figure(results, agg["targets"], dest / VALUES_FILE, title)


def values_figure(results, targets: list[str], path: Path, title: str) -> None:
    """values.png: every pooled test prediction of the targets against the truth."""
    from sercli.evaluation.figures import values_png

    pooled = [p for _, _, predictions in results for p in predictions]
    values_png([[p[t] for t in targets] for p in pooled], [[p["values"][t] for t in targets] for p in pooled],
               targets, path, title=title)
