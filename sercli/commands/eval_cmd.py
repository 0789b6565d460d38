"""`sercli eval`: WA, UA, macro-F1, per-class recall and confusion matrices of trained runs,
and `--compare` tables of several runs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.core.errors import SercliError
from sercli.core.log import info, show
from sercli.core.options import Dedupe


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
    ensemble_seeds: Annotated[
        bool, typer.Option("--ensemble-seeds", help="Score each test fold once, with its seeds' probabilities averaged.")
    ] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print the metrics as CSV (a row per job, mean, std, CI, pooled) instead of JSON.")
    ] = False,
    html: Annotated[
        Optional[Path], typer.Option("--html", help="Also write a self-contained HTML report (tables and figures in one file).")
    ] = None,
    dedupe: Dedupe = False,
) -> None:
    """Evaluate a run (every fold and seed of a cross-validation); JSON on stdout.

    The run folder is never changed (`sercli train` wrote its metrics). With --out DIR, the
    evaluation is also written there: DIR/metrics.json and metrics.csv (per-class recall, confusion matrix,
    mean/std/95% CI over folds x seeds and pooled WA/UA), DIR/confusion.png and per job
    predictions.jsonl (and layer_weights.png for heads that learn layer weights). With --ensemble-seeds, each fold is one model: the class probabilities of
    its seeds averaged (metrics.json says "ensemble_seeds": true, its jobs are FOLD-ensemble).

    With --compare, a table of the runs (features, head, strategy, UA/WA with their 95% CI
    over folds x seeds) and tests against the first run: paired per fold (Wilcoxon, t-test)
    for cross-validations, McNemar's exact test for two single splits on the same utterances.

    Examples:
      sercli eval runs/mix > metrics.json
      sercli eval runs/mix --csv > metrics.csv
      sercli eval runs/mix other_feats.jsonl --out evals/other
      sercli eval runs/loso --html loso.html
      sercli eval --compare runs/real-only runs/mix runs/adversarial
    """
    from sercli.core.runfolder import kind, sweep_runs

    if compare or kind(Path(paths[0])) == "sweep":
        if out is not None or html is not None or (not compare and paths[1:]):
            raise SercliError("--compare prints its table and JSON only: drop --out and --html" if compare else
                              f"{paths[0]} is a sweep: evaluate its runs one by one (on other records, or with --out)")
        runs: list[Path] = []
        for p in paths if compare else paths[:1]:
            runs += sweep_runs(Path(p)) if kind(Path(p)) == "sweep" else [Path(p)]
        if compare and len(runs) < 2:
            raise SercliError("--compare needs at least two runs")
        _print_compare(runs, allow_speaker_overlap, ensemble_seeds)
    else:
        _evaluate_one(Path(paths[0]), paths[1:], allow_speaker_overlap, out, overwrite, ensemble_seeds, as_csv, html,
                      dedupe)


def _evaluate_one(run: Path, record_paths: list[str], allow_overlap: bool, out: Path | None, overwrite: bool,
                  ensemble_seeds: bool = False, as_csv: bool = False, html: Path | None = None,
                  dedupe: bool = False) -> None:
    from sercli.commands.tables import aggregate_table
    from sercli.evaluation.evaluate import evaluate_run
    from sercli.core.runfolder import check_target, is_eval_output, staged
    from sercli.evaluation.write import write_evaluation

    if out is not None:
        _check_outside(run, out)
    if html is not None:
        _check_outside(run, html)
    # features, or audio for a fine-tuned run: sercli.evaluation.evaluate checks them against the run
    records = _records(run, record_paths, dedupe) if record_paths else None
    if out is None:
        agg, results = evaluate_run(run, records, allow_overlap, ensemble_seeds=ensemble_seeds)
    else:
        check_target(out, overwrite, is_eval_output, "evaluation folder")
        with staged(out, overwrite=overwrite, replaceable=is_eval_output, what="evaluation folder") as build:
            agg, results = evaluate_run(run, records, allow_overlap, ensemble_seeds=ensemble_seeds)
            write_evaluation(build, results, agg, title=f"{out.name}: pooled test predictions")
            from sercli.evaluation.report import write_layer_weights

            write_layer_weights(run, build / "layer_weights.png")
    where = f" on {', '.join(record_paths)}" if records else ""
    how = ", seeds ensembled (probabilities averaged)" if ensemble_seeds else ""
    show(aggregate_table(agg, title=f"Evaluation of {run}{where}{how}"))
    if html is not None:
        from sercli.evaluation.report import html_report

        html.parent.mkdir(parents=True, exist_ok=True)
        html_report(run, agg, html, title=f"Evaluation of {run.name}{where}{how}", results=results)
        info(f"Wrote {html}")
    if as_csv:
        from sercli.evaluation.tabular import metrics_csv

        print(metrics_csv(agg), end="")
    else:
        print(json.dumps({"run": str(run), **({"records": record_paths} if records is not None else {}), **agg}))


def _records(run: Path, paths: list[str], dedupe: bool) -> list[dict]:
    """The records to score, checked as every command's input (sercli.core.inputs): their
    emotions must be the run's (``Anger`` read as ``angry``, for a run that learnt ``angry``); for
    a run with dimensional targets, numbers there (records without them are skipped, with a count)."""
    from sercli.core.inputs import LabelCheck, read_inputs
    from sercli.core.runfolder import CONFIG_FILE, jobs_of, read_json
    from sercli.core.targets import keep, targets_of

    config = read_json(Path(jobs_of(run)[0]["dir"]) / CONFIG_FILE)
    labels, targets = config.get("labels"), targets_of(config)
    check = LabelCheck(tuple(labels), option=f"the emotions {run} learnt") if labels else LabelCheck(strict=False)
    records = keep(read_inputs([(paths, ("emotion",) if labels else ())], dedupe, check, targets)[0], targets,
                   ", ".join(paths))
    if not records:
        raise SercliError(f"{', '.join(paths)}: no records with {', '.join(targets)}, which {run} predicts")
    return records


def _check_outside(run: Path, out: Path) -> None:
    """An evaluation folder neither inside the run nor holding it."""
    r, o = run.resolve(), out.resolve()
    if o == r or r in o.parents:
        raise SercliError(f"--out {out}: inside the run folder {run}; evaluations are written outside it")
    if o in r.parents:
        raise SercliError(f"--out {out}: holds the run folder {run}; choose a folder outside it")


def _print_compare(runs: list[Path], allow_overlap: bool, ensemble_seeds: bool = False) -> None:
    from sercli.commands.tables import compare_table, describe_run, wide_console
    from sercli.evaluation.evaluate import compare, evaluate_run

    evaluated = [(r, *evaluate_run(r, allow_overlap=allow_overlap, ensemble_seeds=ensemble_seeds)) for r in runs]
    rows = compare([(str(r), agg) for r, agg, _ in evaluated])
    for row, (run, _, results) in zip(rows, evaluated):
        row.update(describe_run(run))
        if row.get("vs_first") is not None:
            row["vs_first"]["mcnemar"] = _mcnemar(evaluated[0][2], results)
    _note_confounds(rows)
    show(compare_table(rows), wide_console())
    print(json.dumps({"runs": rows}))


def _note_confounds(rows: list[dict]) -> None:
    """A run whose head or features differ from the first run's: its ΔUA is not the strategy's
    alone. Recorded in the row (``differs_from_first``) and said once per run on stderr."""
    from sercli.core.log import warn

    first = rows[0]
    for row in rows[1:]:
        differs = [k for k in ("features", "head") if row.get(k) != first.get(k)]
        if differs:
            row["differs_from_first"] = differs
            what = ", ".join(f"{k} {row.get(k)!r} (first run: {first.get(k)!r})" for k in differs)
            warn(f"{Path(row['run']).name} differs from the first run in {what}: its ΔUA and p-values "
                 "mix that change with the strategy's; compare against a first run with the same "
                 + " and ".join(differs))


def _mcnemar(first, other) -> dict | None:
    """McNemar's exact test when both runs are a single split (one job each) tested on the
    same utterances: the per-fold tests have only one fold to pair there."""
    from sercli.core.metrics import mcnemar

    if len(first) != 1 or len(other) != 1 or "predicted" not in (first[0][2] or [{}])[0]:
        return None  # several jobs (paired per fold instead), or no classes (a run with dimensional targets)
    a = {p["id"]: p["predicted"] == p["emotion"] for p in first[0][2]}
    b = {p["id"]: p["predicted"] == p["emotion"] for p in other[0][2]}
    if set(a) != set(b):
        return None
    ids = sorted(a)
    return mcnemar([a[i] for i in ids], [b[i] for i in ids])
