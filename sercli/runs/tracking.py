"""A finished run folder, sent to an experiment tracker (`train --tracker`, `sercli track`).

Everything comes from the run folder, after training, so that a tracker sees exactly what the
run holds, whatever ran the jobs (one process or ``--jobs N``): the configuration (``params``),
each job's per-epoch curves (``JOB/train_loss``, ``JOB/val_loss``, ``JOB/val_UA`` by epoch, and
``JOB/chosen_epoch``, the epoch early stopping kept), the test metrics (``test/UA`` etc. per
job, ``summary/UA_mean``..., ``summary/pooled_UA``), a Markdown table of the jobs, and the figures.

`train --tracker` sends a run only once its folder is final (renamed into place), with its final
path: a tracker that fails costs a warning naming it (`send`), never the run, which
`sercli track RUN` sends again. Where a tracker would write (its folder, and every path among
its options, such as ``logdir``) is checked before any work (`check_places`): never inside an
existing run other than the one being written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.evaluation.figures import chosen_epochs
from sercli.core.runfolder import (
    CONFIG_FILE, CONFUSION_FILE, CURVES_FILE, VALUES_FILE, HISTORY_FILE, METRICS_FILE, RUN_FILE, jobs_of, read_json,
)

CURVES = ("train_loss", "val_loss", "val_UA", "val_WA", "val_CCC", "val_score")


def check_places(tracker, where: Path, own: Path | None = None) -> None:
    """SercliError, before any work, when ``where`` (the folder given to ``tracker``) or a path
    among its options lies inside (or is) an existing run folder other than ``own`` (the run
    `train` is writing, whose own folder its tracker may use): no command writes below a run."""
    from sercli.core.errors import SercliError
    from sercli.core.runfolder import is_written_by_sercli, run_above

    places = [("the tracker's folder", Path(where))]
    options = getattr(tracker, "options", None)
    for key in getattr(type(options), "model_fields", {}):
        value = getattr(options, key, None)
        if isinstance(value, Path):
            places.append((f"-O {key}={value}", value))
    mine = Path(own).resolve() if own is not None else None
    for what, path in places:
        holder = path if is_written_by_sercli(path) else run_above(path)
        if holder is not None and not (mine is not None and mine in (Path(holder).resolve(), *Path(holder).resolve().parents)):
            raise SercliError(f"tracker {tracker.name!r}: {what} ({path}) is inside the run folder {holder}, "
                              "which no later command changes; choose a folder outside it")


def send(tracker, run: Path, where: Path) -> str | None:
    """`track` ``run`` with ``tracker``; None when it went through, else one line that names the
    tracker's plugin and says why (the run is untouched: `sercli track RUN` sends it again)."""
    from sercli.core.guards import one_line
    from sercli.core.plugins import describe

    try:
        track(tracker, run, where)
    except Exception as exc:  # noqa: BLE001 - any tracker, any failure: the run is complete (Ctrl-C still ends it)
        return f"{describe('tracker', tracker)} failed on {run}: {one_line(exc)}"
    return None


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
            names = list(agg.get("metrics") or ("WA", "UA", "macro_F1"))  # a --target run: CCC, r, RMSE per target
            rows = ["| job | n | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
            for step, j in enumerate(agg.get("jobs") or []):
                for m in names:
                    tracker.scalar(f"test/{m}", j[m], step)
                rows.append(f"| {j['name']} | {j['n']} | " + " | ".join(f"{j[m]:.4f}" for m in names) + " |")
            for m in names:
                tracker.scalar(f"summary/{m}_mean", agg[m]["mean"])
                tracker.scalar(f"summary/pooled_{m}", agg["pooled"][m])
            tracker.text("test_metrics", "\n".join(rows))
        if (run / CONFUSION_FILE).exists():
            tracker.figure("test/confusion", run / CONFUSION_FILE)
        if (run / VALUES_FILE).exists():
            tracker.figure("test/values", run / VALUES_FILE)
    finally:
        tracker.finish()
