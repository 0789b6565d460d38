"""An evaluation written into a folder: metrics (JSON and CSV), the confusion figure and each
job's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.core.fsutil import atomic_write_text
from sercli.core.runfolder import CONFUSION_FILE, METRICS_CSV, METRICS_FILE, PREDICTIONS_FILE, job_folder, write_json, write_jsonl


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
    confusion_png(agg["pooled"], dest / CONFUSION_FILE, title=title, seeds=seeds)  # each utterance once
