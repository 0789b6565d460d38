"""A finished run folder, sent to an experiment tracker (`train --tracker`, `sercli track`).

Everything comes from the run folder, after training, so that a tracker sees exactly what the
run holds, whatever ran the jobs (one process or ``--jobs N``): the configuration (``params``),
each job's per-epoch curves (``JOB/train_loss``, ``JOB/val_loss``, ``JOB/val_UA`` by epoch, and
``JOB/chosen_epoch``, the epoch early stopping kept), the test metrics (``test/UA`` etc. per
job, ``summary/UA_mean``..., ``summary/pooled_UA``), a Markdown table of the jobs, and the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.evaluation.figures import chosen_epochs
from sercli.core.runfolder import (
    CONFIG_FILE, CONFUSION_FILE, CURVES_FILE, HISTORY_FILE, METRICS_FILE, RUN_FILE, jobs_of, read_json,
)

CURVES = ("train_loss", "val_loss", "val_UA", "val_WA")


def track(tracker, run: Path, where: Path) -> None:
    """Send ``run`` (a run folder of one job or a cross-validation) to ``tracker``."""
    import json

    run = Path(run)
    jobs = jobs_of(run)
    params = read_json(run / RUN_FILE) if (run / RUN_FILE).exists() else read_json(run / CONFIG_FILE)
    first = read_json(jobs[0]["dir"] / CONFIG_FILE)
    params = {**params, "head": first.get("head"), "features": first.get("features")}
    tracker.start(where, run.name, json.loads(json.dumps(params, default=str)))
    try:
        for job in jobs:
            tag = job["name"] if job["name"] != "." else "job"
            history = read_json(job["dir"] / HISTORY_FILE, list) if (job["dir"] / HISTORY_FILE).exists() else []
            for epoch, h in enumerate(history, 1):
                for key in CURVES:
                    if isinstance(h.get(key), (int, float)):
                        tracker.scalar(f"{tag}/{key}", h[key], epoch)
            for i in chosen_epochs(history):
                tracker.scalar(f"{tag}/chosen_epoch", i + 1, i + 1)
            if (job["dir"] / CURVES_FILE).exists():
                tracker.figure(f"{tag}/curves", job["dir"] / CURVES_FILE)
        if (run / METRICS_FILE).exists():
            agg = read_json(run / METRICS_FILE)
            rows = ["| job | n | WA | UA | macro-F1 |", "|---|---|---|---|---|"]
            for step, j in enumerate(agg.get("jobs") or []):
                for m in ("WA", "UA", "macro_F1"):
                    tracker.scalar(f"test/{m}", j[m], step)
                rows.append(f"| {j['name']} | {j['n']} | {j['WA']:.4f} | {j['UA']:.4f} | {j['macro_F1']:.4f} |")
            for m in ("WA", "UA", "macro_F1"):
                tracker.scalar(f"summary/{m}_mean", agg[m]["mean"])
                tracker.scalar(f"summary/pooled_{m}", agg["pooled"][m])
            tracker.text("test_metrics", "\n".join(rows))
        if (run / CONFUSION_FILE).exists():
            tracker.figure("test/confusion", run / CONFUSION_FILE)
    finally:
        tracker.finish()
