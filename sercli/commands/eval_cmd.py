"""`sercli eval`: WA, UA, macro-F1, per-class recall and confusion matrices of trained runs,
and `--compare` tables of several runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sercli.errors import SercliError
from sercli.log import console


def evaluate(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="RUN [RECORDS...]: a run folder written by `sercli train`, and optionally test feature "
            "records (default: the run's held-out test parts). With --compare: RUN RUN ..."
        ),
    ],
    compare: Annotated[
        bool, typer.Option("--compare", help="Compare runs side by side, each against the first.")
    ] = False,
    allow_speaker_overlap: Annotated[
        bool, typer.Option("--allow-speaker-overlap", help="Evaluate on speakers seen in training.")
    ] = False,
) -> None:
    """Evaluate a run (every fold and seed of a cross-validation); JSON on stdout.

    Writes RUN/metrics.json (per-class recall, confusion matrix, mean/std/95% CI over folds x
    seeds and pooled WA/UA), RUN/confusion.png, and per job predictions.jsonl.
    """
    from sercli.records import read_many
    from sercli.report import aggregate_table
    from sercli.runs import evaluate_run, kind, sweep_runs

    if compare:
        runs: list[Path] = []
        for p in paths:
            runs += sweep_runs(Path(p)) if kind(Path(p)) == "sweep" else [Path(p)]
        if len(runs) < 2:
            raise SercliError("--compare needs at least two runs")
        _print_compare([(str(r), evaluate_run(r, allow_overlap=allow_speaker_overlap)) for r in runs])
        return
    run = Path(paths[0])
    records = read_many(paths[1:], required=("emotion", "features")) if paths[1:] else None
    if kind(run) == "sweep":
        if records is not None:
            raise SercliError(f"{run} is a sweep: evaluate its runs one by one on other records")
        _print_compare([(str(r), evaluate_run(r, allow_overlap=allow_speaker_overlap)) for r in sweep_runs(run)])
        return
    agg = evaluate_run(run, records, allow_speaker_overlap)
    console.print(aggregate_table(agg, title=f"Evaluation of {run}"))
    print(json.dumps({"run": str(run), **agg}))


def _print_compare(results) -> None:
    from sercli.report import compare, compare_table, wide_console

    rows = compare(results)
    wide_console().print(compare_table(rows))
    print(json.dumps({"runs": rows}))
