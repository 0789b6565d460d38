"""From records to run folders, and from run folders to metrics.

A *job* is one fold trained with one seed; its folder holds the model (model.safetensors),
config.json (resolved configuration, speakers, seeds, versions, input hashes), history.json,
curves.png and test.jsonl (its held-out records). Layouts:

    RUN/                      one job (no --cv, one seed): the job folder is RUN itself
    RUN/run.json              several jobs (--cv and/or --seeds): RUN/fold-XX-seed-Y/ each
    RUN/sweep.json            a --sweep: RUN/KEY=VALUE/ each a run of one of the above kinds

`train` builds the run in a temporary sibling folder and renames it into place when every job
is trained and evaluated (`sercli.runfolder.staged`); `evaluate_run` then writes RUN/metrics.json:
mean, std and a 95% confidence interval over folds x seeds, and the metrics of all test
predictions pooled. Later commands never write into a run folder: `eval` prints, or writes to
its own --out folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import platform
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sercli.cv import Fold, absent_warning, check_fold, check_speakers, drop_leaking, speaker, split_val
from sercli.errors import SercliError
from sercli.fsutil import atomic_write_text, safe_name
from sercli.log import info, warn
from sercli.runfolder import RUN_FILE, SWEEP_FILE, child, jobs_of, kind, own_file, sweep_runs  # noqa: F401 (API)

Record = dict[str, Any]
Splits = dict[tuple[int, int], tuple[list[Record], list[Record]]]


@dataclass
class Plan:
    """Everything that decides a run's numbers (written to run.json / config.json)."""

    labels: list[str]
    folds: list[Fold]
    seeds: list[int]
    strategy: str
    strategy_options: dict[str, Any]
    cfg: Any  # sercli.train.TrainConfig
    protocol: str
    synthetic: list[Record] = field(default_factory=list)
    tune: dict[str, list[Any]] = field(default_factory=dict)
    val_fraction: float = 0.2
    inputs: list[str] = field(default_factory=list)
    allow_speaker_overlap: bool = False
    splits: Splits | None = None  # (fold index, seed) -> (train, val), from `plan_splits`

    def single(self) -> bool:
        return self.protocol == "holdout" and len(self.folds) == 1 and len(self.seeds) == 1


def select_labels(records: list[Record], classes: list[str]) -> tuple[list[str], list[Record]]:
    """The emotions to learn (``classes`` or all, sorted) and the records that have one.

    Refuses what cannot make a classifier: no records, fewer than two emotions, or a
    requested emotion that no record has."""
    if not records:
        raise SercliError("no training records: the input is empty")
    present = sorted({r["emotion"] for r in records})
    classes = list(dict.fromkeys(classes))
    missing = [c for c in classes if c not in present]
    if missing:
        raise SercliError(
            f"--classes: no records of {', '.join(repr(c) for c in missing)} (the records have {', '.join(present)})"
        )
    labels = classes or present
    if len(labels) < 2:
        how = "--classes gives" if classes else "the records have"
        raise SercliError(f"{how} a single emotion ({labels[0]!r}): a classifier needs at least two")
    unknown = sorted(set(present) - set(labels))
    if unknown:
        warn(f"ignoring records with emotions outside --classes: {', '.join(unknown)}")
    kept = [r for r in records if r["emotion"] in labels]
    return labels, kept


def file_sha256(path: str) -> str | None:
    if path == "-" or not Path(path).exists():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    import numpy
    import sklearn
    import torch

    from sercli import __version__

    return {
        "sercli": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "scikit-learn": sklearn.__version__, "platform": sys.platform,
    }


def grid(tune: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the --tune values ([{}] when nothing is tuned)."""
    keys = sorted(tune)
    return [dict(zip(keys, values)) for values in itertools.product(*(tune[k] for k in keys))]


# -- training -----------------------------------------------------------------------------------

def plan_splits(plan: Plan) -> Splits:
    """Every fold x seed's (train, val), checked before the first minute of training: a fold that
    cannot learn every emotion or choose fairly is refused; what only narrows its numbers
    (a test part without some emotion) is warned about once."""
    splits: Splits = {}
    warnings: list[str] = []
    for i, fold in enumerate(plan.folds):
        for seed in plan.seeds:
            train, val = split_val(fold, plan.val_fraction, seed)
            check_speakers(train + val, fold.test, plan.allow_speaker_overlap, fold.name, fold.given)
            warnings += check_fold(fold, train, val, plan.labels, seed)
            splits[(i, seed)] = (train, val)
    for message in dict.fromkeys(warnings):
        warn(message)
    return splits


def job_name(fold: Fold, seed: int) -> str:
    return safe_name(f"{fold.name}-seed-{seed}")


def run_plan(plan: Plan, out: Path, name: str | None = None) -> dict[str, Any] | None:
    """Train every fold x seed into the (new, empty) folder ``out``; then evaluate the test
    parts (if any). ``name``: what the run will be called once in place (for titles)."""
    from sercli.data import feature_meta

    out = Path(out)
    # One feature kind for everything, checked before the first minute of training.
    feature_meta([r for f in plan.folds for r in f.pool + f.test + (f.val or [])] + plan.synthetic)
    splits = plan.splits or plan_splits(plan)
    resolved = _resolved(plan)
    jobs = []
    for i, fold in enumerate(plan.folds):
        for seed in plan.seeds:
            job = "." if plan.single() else job_name(fold, seed)
            job_dir = out if job == "." else child(out, job)
            summary = train_job(plan, fold, seed, job_dir, resolved, splits[(i, seed)])
            jobs.append({"name": job, "fold": fold.name, "seed": seed, **summary})
            info(
                f"{fold.name} ({fold.description}) seed {seed}: {summary['n_train']} real + "
                f"{summary['n_synthetic']} synthetic, validation UA {summary['val_UA']:.4f}"
            )
    if not plan.single():
        manifest = {
            "kind": "cv",
            "protocol": plan.protocol,
            "labels": plan.labels,
            "folds": [
                {"name": f.name, "description": f.description, "test_speakers": sorted({speaker(r) for r in f.test}),
                 "n_test": len(f.test)}
                for f in plan.folds
            ],
            "seeds": plan.seeds,
            "jobs": jobs,
            **resolved,
        }
        atomic_write_text(out / RUN_FILE, json.dumps(manifest, indent=2))
    if any(f.test for f in plan.folds):
        return evaluate_run(out, write_to=out, name=name, warn_absent=False)
    return None


def _resolved(plan: Plan) -> dict[str, Any]:
    from sercli.train import config_dict

    return {
        "strategy": {"name": plan.strategy, "options": plan.strategy_options},
        "train": config_dict(plan.cfg),
        "tune": plan.tune,
        "val_fraction": plan.val_fraction,
        "allow_speaker_overlap": plan.allow_speaker_overlap,
        "inputs": {p: file_sha256(p) for p in plan.inputs},
        "versions": versions(),
        "command": sys.argv[1:],
    }


def train_job(
    plan: Plan, fold: Fold, seed: int, out: Path, resolved: dict[str, Any], split: tuple[list[Record], list[Record]]
) -> dict[str, Any]:
    """Train one fold with one seed (choosing among --tune values by validation UA)."""
    from sercli import plugins as pl
    from sercli.data import Examples, feature_meta
    from sercli.report import training_curves
    from sercli.train import Trainer, save_model

    train, val = split
    synthetic, leaked = drop_leaking(plan.synthetic, fold.test)
    if leaked:
        warn(f"{fold.name}: dropped {len(leaked)} synthetic utterances whose text is a test transcript")
    index = {lab: i for i, lab in enumerate(plan.labels)}
    real_ex = Examples.build(train, index, 0)
    val_ex = Examples.build(val, index, 0)
    syn_ex = Examples.build(synthetic, index, 1)
    if len(syn_ex) < len(synthetic):
        warn(f"{len(synthetic) - len(syn_ex)} synthetic records have emotions not learnt; ignored")

    best = None
    trials = []
    for combo in grid(plan.tune):
        cfg = replace(plan.cfg, seed=seed, **combo)
        strategy = pl.create("strategy", plan.strategy, plan.strategy_options)
        trainer = Trainer(cfg, plan.labels)
        model = strategy.fit(trainer, real_ex, syn_ex, val_ex)
        val_loss, val_metrics = trainer.evaluate(model, val_ex)
        trials.append({**combo, "val_UA": val_metrics["UA"], "val_WA": val_metrics["WA"], "val_loss": val_loss})
        if best is None or val_metrics["UA"] > best[3]["UA"]:
            best = (cfg, model, trainer, val_metrics, strategy)
    cfg, model, trainer, val_metrics, strategy = best
    history = trainer.history.epochs
    if cfg.refit:
        # The choices are made; now every training speaker counts. Validation numbers of the
        # refit are on data it trains on, so they only draw the curve.
        refit = Trainer(cfg, plan.labels)
        refit.schedule = [e + 1 for e in trainer.best_epochs]
        model = strategy.fit(refit, real_ex + val_ex, syn_ex, val_ex)
        history = history + [{**h, "stage": f"refit {h['stage']}"} for h in refit.history.epochs]

    out.mkdir(parents=True, exist_ok=True)
    spk = lambda recs: sorted({speaker(r) for r in recs})  # noqa: E731
    config = {
        "labels": plan.labels,
        "features": feature_meta(train),
        "strategy": strategy.provenance(),
        "train": {**resolved["train"], **{k: getattr(cfg, k) for k in plan.tune}, "seed": seed},
        "fold": {"name": fold.name, "description": fold.description, "protocol": plan.protocol},
        "speakers": {"train": spk(train), "val": spk(val), "test": spk(fold.test)},
        "counts": {"train": len(real_ex), "val": len(val_ex), "test": len(fold.test), "synthetic": len(syn_ex),
                   "synthetic_dropped_leak": len(leaked)},
        "tuning": trials if plan.tune else None,
        "val_metrics": val_metrics,
        **{k: v for k, v in resolved.items() if k not in ("train", "strategy")},
    }
    save_model(model, out, config)
    atomic_write_text(out / "history.json", json.dumps(history, indent=1))
    training_curves(history, out / "curves.png", title=f"{plan.strategy} {fold.name} seed {seed}")
    _write_jsonl(out / "test.jsonl", fold.test)
    _write_jsonl(out / "leaked.jsonl", [{"id": r.get("id"), "text": r.get("text")} for r in leaked])
    return {"n_train": len(real_ex), "n_synthetic": len(syn_ex), "n_dropped_leak": len(leaked),
            "val_UA": val_metrics["UA"]}


def _write_jsonl(path: Path, records: list[Record]) -> None:
    if records:
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# -- evaluation ---------------------------------------------------------------------------------

def evaluate_job(job_dir: Path, records: list[Record] | None = None, allow_overlap: bool = False):
    """(metrics, predictions) of one job on ``records`` (default: its own test part)."""
    import numpy as np

    from sercli.data import Examples, check_dims, feature_meta
    from sercli.metrics import compute_metrics
    from sercli.records import read_records
    from sercli.train import load_model

    model, config = load_model(job_dir)
    given = False
    if records is None:
        default = own_file(Path(job_dir) / "test.jsonl")
        if not default.exists():
            raise SercliError(f"{job_dir} has no held-out test part: pass test records, or train with --cv or --test-speakers")
        records = read_records(default)
        # the run's own test part: overlapping speakers were allowed explicitly at training time,
        # and a corpus's own partitions keep their unknown speakers apart (sercli.cv.check_speakers)
        allow_overlap = allow_overlap or config.get("allow_speaker_overlap", False)
        given = str((config.get("fold") or {}).get("protocol", "")).startswith("field:")
    if not records:
        raise SercliError(f"{job_dir}: no test records to evaluate")
    if feature_meta(records) != config["features"]:
        raise SercliError("the test records' features were extracted with other settings than the model's")
    check_dims(records, config["head"], job_dir)
    seen = [{"speaker": s} for s in config["speakers"]["train"] + config["speakers"]["val"]]
    check_speakers(seen, records, allow_overlap, str(job_dir), given)
    labels = config["labels"]
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({r["emotion"] for r in records} - set(index))
    if unknown:
        raise SercliError(
            f"test records have emotions the model does not know: {', '.join(unknown)} (known: {', '.join(labels)})"
        )
    data = Examples.build(records, index, 0)
    trainer = _predictor(config, labels)
    probs = trainer.predict(model, data)
    pred = probs.argmax(1)
    metrics = compute_metrics(data.labels, pred.tolist(), labels)
    predictions = [
        {"id": r.get("id"), "speaker": r.get("speaker"), "emotion": r["emotion"], "predicted": labels[int(p)],
         "probabilities": {lab: round(float(q), 6) for lab, q in zip(labels, row)}}
        for r, p, row in zip(data.records, pred, np.asarray(probs))
    ]
    return metrics, predictions


def _predictor(config: dict[str, Any], labels: list[str]):
    from sercli.train import TrainConfig, Trainer

    known = {k: v for k, v in config["train"].items() if k in TrainConfig.__dataclass_fields__}
    return Trainer(TrainConfig(**{**known, "device": "cpu"}), labels)


def evaluate_run(
    run: Path, records: list[Record] | None = None, allow_overlap: bool = False, *,
    write_to: Path | None = None, name: str | None = None, warn_absent: bool = True,
) -> dict[str, Any]:
    """Evaluate every job of a run and return the aggregate. Nothing is written unless
    ``write_to`` is given (a folder outside the run, or the run being built by `train`):
    then metrics.json, confusion.png and per job predictions.jsonl (and metrics.json)."""
    from sercli.report import aggregate, confusion_png

    run = Path(run)
    jobs = jobs_of(run)
    results = []
    config = None
    for job in jobs:
        metrics, predictions = evaluate_job(job["dir"], records, allow_overlap)
        results.append((job, metrics, predictions))
        if config is None:
            from sercli.train import load_config

            config = load_config(job["dir"])
    absent = {}
    for job, metrics, _ in results:
        if metrics["classes_absent"]:
            absent.setdefault(tuple(metrics["classes_absent"]), []).append(job["fold"])
    if warn_absent:
        for missing, folds in absent.items():
            where = "the test records" if records is not None else "the test part of " + ", ".join(dict.fromkeys(folds))
            warn(absent_warning(where, set(missing), set(config["labels"]) - set(missing)))
    agg = aggregate(results, labels=config["labels"], strategy=config["strategy"],
                    protocol=(config.get("fold") or {}).get("protocol", "holdout"))
    if write_to is not None:
        write_to = Path(write_to)
        for job, metrics, predictions in results:
            dest = write_to if job["name"] == "." else child(write_to, job["name"])
            dest.mkdir(parents=True, exist_ok=True)
            _write_jsonl(dest / "predictions.jsonl", predictions)
            if dest != write_to:
                atomic_write_text(dest / "metrics.json", json.dumps(metrics, indent=2))
        atomic_write_text(write_to / "metrics.json", json.dumps(agg, indent=2))
        title = f"{name or run.name}: pooled test predictions"
        confusion_png(agg["pooled"], write_to / "confusion.png", title=title)
    return agg
