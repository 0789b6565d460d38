"""Evaluation, used by `train`, `eval` and `predict` alike: one inference function
(`probabilities`), the metrics and predictions of a job on records, the aggregate of a run over
folds x seeds, and side-by-side comparisons with paired tests. Nothing here draws or writes: the
commands show the numbers (sercli.commands.tables) and sercli.core.runfolder writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sercli.core.errors import SercliError
from sercli.core.log import warn
from sercli.core.targets import targets_of
from sercli.evaluation.stats import _test_hash, paired_tests, per_fold, summary  # noqa: F401  (their home is stats)

METRICS = ("UA", "WA", "macro_F1")
Record = dict[str, Any]


# -- inference ----------------------------------------------------------------------------------

class Arrays:
    """In-memory (layers, frames, dim) features, read like `sercli.learning.data.Examples`."""

    def __init__(self, arrays: Sequence[np.ndarray]):
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    def features(self, i: int) -> np.ndarray:
        return self.arrays[i]


# -- one job ------------------------------------------------------------------------------------

@dataclass
class Job:
    """A trained job to evaluate: its name in the run, fold, seed, model, config and records."""

    name: str
    fold: str
    seed: int
    model: Any
    config: dict[str, Any]
    records: list[Record]
    own: bool = True  # records are the job's own test part (trusted as training allowed it)


def load_job(job: dict[str, Any], records: list[Record] | None = None) -> Job:
    """A job of `sercli.core.runfolder.jobs_of` with its model, on ``records`` or its own test part."""
    from sercli.core.records import read_records
    from sercli.core.runfolder import TEST_FILE, own_file
    from sercli.learning.train import load_model

    model, config = load_model(job["dir"])
    own = records is None
    if own:
        default = own_file(Path(job["dir"]) / TEST_FILE)
        if not default.exists():
            raise SercliError(f"{job['dir']} has no held-out test part: pass test records, or train with --cv or --test-speakers")
        records = read_records(default)
    return Job(job["name"], job["fold"], job["seed"], model, config, records, own)


def evaluate_job(job: Job, allow_overlap: bool = False, where: Any = None) -> tuple[dict[str, Any], list[Record]]:
    """(metrics, predictions) of one job on its records, after the checks that make them fair."""
    data, probs = job_probabilities(job, allow_overlap, where)
    return score(job.config["labels"], data, probs, targets_of(job.config))


def job_examples(job: Job, allow_overlap: bool = False, where: Any = None):
    """The Examples a job is evaluated on: its records, checked (features of the model's kind
    and size, unseen speakers, known emotions) and, for a model trained with ``norm: speaker``,
    standardised with each speaker's statistics over these records (their features only)."""
    from sercli.learning import speakernorm
    from sercli.learning.cv import check_speakers
    from sercli.learning.data import Examples
    from sercli.features.read import check_dims, feature_meta
    from sercli.learning.finetune import check_records, is_finetuned
    from sercli.learning.finetune import examples as audio_examples

    config, records, where = job.config, job.records, str(where or job.name)
    given = False
    if job.own:
        # the run's own test part: overlapping speakers were allowed explicitly at training time,
        # and a corpus's own partitions keep their unknown speakers apart (sercli.learning.cv.check_speakers)
        allow_overlap = allow_overlap or config.get("allow_speaker_overlap", False)
        given = str((config.get("fold") or {}).get("protocol", "")).startswith("field:")
    if not records:
        raise SercliError(f"{where}: no test records to evaluate")
    finetuned = is_finetuned(config)
    if finetuned:  # the model's own encoder reads the audio
        check_records(records, config["features"])
    elif feature_meta(records) != config["features"]:
        raise SercliError("the test records' features were extracted with other settings than the model's")
    else:
        check_dims(records, config["head"], where)
    seen = [{"speaker": s} for s in config["speakers"]["train"] + config["speakers"]["val"]]
    check_speakers(seen, records, allow_overlap, where, given)
    labels, targets = config["labels"], targets_of(config)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({r["emotion"] for r in records} - set(index)) if labels else []
    if targets:
        missing = [t for t in targets if any(r.get(t) is None for r in records)]
        if missing:
            raise SercliError(f"{where}: test records without {', '.join(missing)}, which the model predicts")
    if unknown:
        raise SercliError(
            f"test records have emotions the model does not know: {', '.join(unknown)} (known: {', '.join(labels)})"
        )
    data = audio_examples(records, index, 0, config["features"]) if finetuned else Examples.build(records, index, 0,
                                                                                                   targets)
    if norm_of(config) == "speaker":
        data = speakernorm.apply(data, where)
    return data


def norm_of(config: dict[str, Any]) -> str:
    """The feature normalisation a job's model was trained with ("none" for older runs)."""
    return str((config.get("train") or {}).get("norm") or "none")


def job_probabilities(job: Job, allow_overlap: bool = False, where: Any = None):
    """(examples, class probabilities (N, C)) of one job on its records (`job_examples`)."""
    from sercli.learning.model import probabilities

    data = job_examples(job, allow_overlap, where)
    probs = probabilities(job.model.to("cpu"), data, int(job.config["train"].get("batch_size", 32)), "cpu")
    return data, probs


def score(labels: list[str], data, probs: np.ndarray, targets: list[str] | None = None) -> tuple[dict[str, Any], list[Record]]:
    """(metrics, predictions) of class probabilities ``probs`` on the Examples ``data`` (with
    ``targets``, a model's outputs: probabilities, then the targets' values)."""
    from sercli.core.metrics import compute_metrics

    if targets:
        from sercli.evaluation.dimensions import score_values

        return score_values(labels, targets, data, probs)
    pred = probs.argmax(1)
    metrics = compute_metrics(data.labels, pred.tolist(), labels)
    predictions = [
        {"id": r.get("id"), "speaker": r.get("speaker"), "emotion": r["emotion"], "predicted": labels[int(p)],
         "probabilities": rounded(labels, row)}
        for r, p, row in zip(data.records, pred, probs)
    ]
    return metrics, predictions


def rounded(labels: list[str], row) -> dict[str, float]:
    """A row of probabilities as written (eval's predictions.jsonl and predict's records)."""
    return {lab: round(float(q), 6) for lab, q in zip(labels, row)}


# -- a run --------------------------------------------------------------------------------------

def evaluate_jobs(jobs: list[Job], allow_overlap: bool = False, *, warn_absent: bool = True, where=None,
                  ensemble_seeds: bool = False):
    """(aggregate, [(job, metrics, predictions)]) of a run's jobs; with ``ensemble_seeds``, one
    result per fold, from the probabilities of its seeds averaged (`ensemble`)."""
    from sercli.learning.cv import absent_warning

    results = []
    if ensemble_seeds:
        results = ensemble(jobs, allow_overlap, where)
    from sercli.core.log import progress

    with progress() as bar:  # test records scored, job by job, on stderr (none with -q)
        task = bar.add_task("eval: records", total=0 if ensemble_seeds else sum(len(j.records) for j in jobs))
        for job in [] if ensemble_seeds else jobs:
            metrics, predictions = evaluate_job(job, allow_overlap, where(job) if where else None)
            results.append(({"name": job.name, "fold": job.fold, "seed": job.seed}, metrics, predictions))
            bar.advance(task, len(job.records))
    config = jobs[0].config
    if warn_absent:
        absent: dict[tuple, list] = {}
        for job, metrics, _ in results:
            if metrics.get("classes_absent"):
                absent.setdefault(tuple(metrics["classes_absent"]), []).append(job["fold"])
        for missing, folds in absent.items():
            whose = "the test records" if not jobs[0].own else "the test part of " + ", ".join(dict.fromkeys(folds))
            warn(absent_warning(whose, set(missing), set(config["labels"]) - set(missing)))
    agg = aggregate(results, labels=config["labels"], strategy=config["strategy"],
                    protocol=(config.get("fold") or {}).get("protocol", "holdout"), targets=targets_of(config))
    if ensemble_seeds:
        agg["seeds"] = sorted({job.seed for job in jobs})
        agg["ensemble_seeds"] = True  # one job per fold: its seeds' probabilities averaged
    return agg, results


def ensemble(jobs: list[Job], allow_overlap: bool = False, where=None) -> list[tuple[dict[str, Any], dict, list]]:
    """[(job, metrics, predictions)], one per fold: the class probabilities of the fold's seeds
    averaged on its test records (the same records for every seed, else an error)."""
    from sercli.core.fsutil import safe_name

    by_fold: dict[str, list[Job]] = {}
    for job in jobs:
        by_fold.setdefault(job.fold, []).append(job)
    results = []
    for fold, members in by_fold.items():
        probs, data = [], None
        for job in members:
            examples, p = job_probabilities(job, allow_overlap, where(job) if where else None)
            ids = [r.get("id") for r in examples.records]
            if data is not None and ids != [r.get("id") for r in data.records]:
                raise SercliError(f"{fold}: its seeds were tested on different records; they cannot be ensembled")
            if data is not None and job.config["labels"] != members[0].config["labels"]:
                raise SercliError(f"{fold}: its seeds learnt different emotions; they cannot be ensembled")
            data = examples
            probs.append(p)
        seeds = sorted(job.seed for job in members)
        metrics, predictions = score(members[0].config["labels"], data, np.mean(probs, axis=0),
                                     targets_of(members[0].config))
        entry = {"name": safe_name(f"{fold}-ensemble"), "fold": fold, "seed": "+".join(str(s) for s in seeds),
                 "seeds": seeds}
        results.append((entry, metrics, predictions))
    return results


def evaluate_run(run: Path, records: list[Record] | None = None, allow_overlap: bool = False, *,
                 warn_absent: bool = True, ensemble_seeds: bool = False):
    """(aggregate, results) of every job of a run folder, on ``records`` or their own test parts
    (with ``ensemble_seeds``: one result per fold, its seeds' probabilities averaged)."""
    from sercli.core.runfolder import jobs_of

    listed = jobs_of(Path(run))
    jobs = [load_job(j, records) for j in listed]
    dirs = {id(job): j["dir"] for job, j in zip(jobs, listed)}
    return evaluate_jobs(jobs, allow_overlap, warn_absent=warn_absent, where=lambda job: dirs[id(job)],
                         ensemble_seeds=ensemble_seeds)


# -- aggregates and comparisons -----------------------------------------------------------------


def aggregate(results, labels: list[str], strategy: dict[str, Any], protocol: str,
              targets: list[str] | None = None) -> dict[str, Any]:
    """``results``: [(job, metrics, predictions)] -> the run's metrics.json (with ``targets``,
    CCC, r and RMSE per dimension: sercli.evaluation.dimensions)."""
    from sercli.core.metrics import compute_metrics

    if targets:
        from sercli.evaluation.dimensions import aggregate_values

        return aggregate_values(results, labels, targets, strategy, protocol)
    jobs = []
    y_true, y_pred = [], []
    index = {lab: i for i, lab in enumerate(labels)}
    for job, metrics, predictions in results:
        jobs.append({
            "name": job["name"], "fold": job["fold"], "seed": job["seed"],
            **({"seeds": job["seeds"]} if "seeds" in job else {}), "n": metrics["n"],
            **{m: metrics[m] for m in METRICS}, "test_hash": _test_hash(predictions),
            # emotions without test items: UA and macro-F1 of this job average over the others
            "classes_absent": metrics.get("classes_absent", []),
        })
        y_true += [index[p["emotion"]] for p in predictions]
        y_pred += [index[p["predicted"]] for p in predictions]
    return {
        "strategy": strategy,
        "protocol": protocol,
        "n_jobs": len(jobs),
        "n_folds": len({j["fold"] for j in jobs}),
        "seeds": sorted({j["seed"] for j in jobs}),
        **{m: summary([j[m] for j in jobs]) for m in METRICS},
        # Every test prediction of every fold and seed together: each seed sees each test
        # utterance once, so pooled WA/UA equal their means over seeds of per-seed pooled values.
        "pooled": compute_metrics(y_true, y_pred, labels),
        "jobs": jobs,
    }


def headline(agg: dict[str, Any]) -> str:
    """The metric a run is ranked by: UA, or the mean CCC for a run with dimensional targets."""
    return "UA" if "UA" in agg else "CCC"


def metric_names(agg: dict[str, Any]) -> list[str]:
    """The metrics summarised over a run's jobs (WA, UA, macro-F1; CCC, r, RMSE per dimension)."""
    return list(agg.get("metrics") or METRICS)


def compare(aggs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows for `sercli eval --compare`: every run against the first one."""
    base = aggs[0][1]
    if any(metric_names(agg) != metric_names(base) for _, agg in aggs):
        from sercli.evaluation.dimensions import refuse_mixed

        refuse_mixed(aggs)
    if headline(base) != "UA":  # dimensional targets: every CCC, r and RMSE; paired tests on the mean CCC
        from sercli.evaluation.dimensions import compare_row

        rows = [{"run": name, "strategy": strategy_label(agg["strategy"]), **compare_row(agg)} for name, agg in aggs]
        for row, (_, agg) in list(zip(rows, aggs))[1:]:
            row["vs_first"] = paired_tests(base, agg, "CCC")
        return rows
    rows = []
    for k, (name, agg) in enumerate(aggs):
        row = {
            "run": name,
            "strategy": strategy_label(agg["strategy"]),
            "n_folds": agg["n_folds"], "n_jobs": agg["n_jobs"],
            **{m: {key: agg[m][key] for key in ("mean", "std", "ci95")} for m in METRICS},
            "pooled_UA": agg["pooled"]["UA"], "pooled_WA": agg["pooled"]["WA"],
        }
        if k:
            row["vs_first"] = paired_tests(base, agg)
        rows.append(row)
    return rows


def strategy_label(strategy: dict[str, Any]) -> str:
    """``mix (ratio=0.5)``: the name and the options that differ from the plugin's defaults."""
    from sercli.core import plugins as pl
    from sercli.core.errors import SercliError

    name = strategy.get("plugin") or strategy.get("name", "?")
    opts = strategy.get("options") or {}
    try:
        defaults = pl.get_class("strategy", name).Options().model_dump(mode="json")
    except SercliError:  # a plugin no longer installed: show every option
        defaults = {}
    shown = {k: v for k, v in sorted(opts.items()) if k not in defaults or defaults[k] != v}
    return name + (" (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "")
