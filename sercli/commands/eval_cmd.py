"""`sercli eval`: WA, UA, macro-F1, per-class recall and confusion matrices of trained runs,
and `--compare` tables of several runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

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
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Folder for metrics.json, confusion.png and predictions (outside the run)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out folder.")] = False,
) -> None:
    """Evaluate a run (every fold and seed of a cross-validation); JSON on stdout.

    The run folder is never changed (`sercli train` wrote its metrics). With --out DIR, the
    evaluation is also written there: DIR/metrics.json (per-class recall, confusion matrix,
    mean/std/95% CI over folds x seeds and pooled WA/UA), DIR/confusion.png and per job
    predictions.jsonl.
    """
    from sercli.runfolder import kind, sweep_runs

    if compare or kind(Path(paths[0])) == "sweep":
        if out is not None or (not compare and paths[1:]):
            raise SercliError("--compare prints its table and JSON only: drop --out" if compare else
                              f"{paths[0]} is a sweep: evaluate its runs one by one (on other records, or with --out)")
        runs: list[Path] = []
        for p in paths if compare else paths[:1]:
            runs += sweep_runs(Path(p)) if kind(Path(p)) == "sweep" else [Path(p)]
        if compare and len(runs) < 2:
            raise SercliError("--compare needs at least two runs")
        _print_compare(runs, allow_speaker_overlap)
    else:
        _evaluate_one(Path(paths[0]), paths[1:], allow_speaker_overlap, out, overwrite)


def _evaluate_one(run: Path, record_paths: list[str], allow_overlap: bool, out: Path | None, overwrite: bool) -> None:
    from sercli.commands.tables import aggregate_table
    from sercli.evaluate import evaluate_run
    from sercli.records import read_many
    from sercli.runfolder import check_target, is_eval_output, staged, write_evaluation

    if out is not None:
        _check_outside(run, out)
    records = read_many(record_paths, required=("emotion", "features")) if record_paths else None
    if out is None:
        agg, _ = evaluate_run(run, records, allow_overlap)
    else:
        check_target(out, overwrite, is_eval_output, "evaluation folder")
        with staged(out, overwrite=overwrite, replaceable=is_eval_output, what="evaluation folder") as build:
            agg, results = evaluate_run(run, records, allow_overlap)
            write_evaluation(build, results, agg, title=f"{out.name}: pooled test predictions")
    where = f" on {', '.join(record_paths)}" if records else ""
    console.print(aggregate_table(agg, title=f"Evaluation of {run}{where}"))
    print(json.dumps({"run": str(run), **({"records": record_paths} if records is not None else {}), **agg}))


def _check_outside(run: Path, out: Path) -> None:
    """An evaluation folder neither inside the run nor holding it."""
    r, o = run.resolve(), out.resolve()
    if o == r or r in o.parents:
        raise SercliError(f"--out {out}: inside the run folder {run}; evaluations are written outside it")
    if o in r.parents:
        raise SercliError(f"--out {out}: holds the run folder {run}; choose a folder outside it")


def _print_compare(runs: list[Path], allow_overlap: bool) -> None:
    from sercli.commands.tables import compare_table, wide_console
    from sercli.evaluate import compare, evaluate_run

    rows = compare([(str(r), evaluate_run(r, allow_overlap=allow_overlap)[0]) for r in runs])
    wide_console().print(compare_table(rows))
    print(json.dumps({"runs": rows}))
