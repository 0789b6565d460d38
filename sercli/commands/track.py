"""`sercli track RUN --tracker NAME`: send a run trained before to an experiment tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sercli.core.log import info
from sercli.core.options import PluginOptions


def track(
    run: Annotated[Path, typer.Argument(help="A run folder written by `sercli train` (not changed).")],
    tracker: Annotated[str, typer.Option("--tracker", "-t", help="Tracker plugin, e.g. tensorboard.")] = "tensorboard",
    out: Annotated[Path, typer.Option("--out", help="Folder for the tracker's local files (outside the run).")] = Path("tracking"),
    option: PluginOptions = None,
) -> None:
    """Send a run's parameters, per-epoch curves, test metrics and figures to a tracker.

    `sercli train --tracker NAME` does the same as the run is written (into RUN/NAME/).
    Here the files go to --out/RUN_NAME, so one --out holds many runs side by side.

    Examples:
      sercli track runs/mix --tracker tensorboard --out tb/
      tensorboard --logdir tb/
    """
    from sercli.core import plugins
    from sercli.contract.common import parse_option_pairs
    from sercli.core.errors import SercliError
    from sercli.core.runfolder import jobs_of, kind
    from sercli.runs.tracking import check_places, send

    if kind(run) == "sweep":
        raise SercliError(f"{run} is a sweep: track its runs one by one")
    where = out / run.resolve().name
    if run.resolve() in where.resolve().parents or where.resolve() == run.resolve():
        raise SercliError(f"--out {out}: inside the run folder {run}; choose a folder outside it")
    jobs_of(run)  # a run folder, readable, before the tracker starts
    plugin = plugins.create("tracker", tracker, parse_option_pairs(option))
    check_places(plugin, where)  # nothing below this run or any other, before any work
    problem = send(plugin, run, where)
    if problem:
        raise SercliError(f"{problem}; the run is unchanged: fix that and run this command again")
    info(f"Tracked {run} with {tracker} in {where}")
