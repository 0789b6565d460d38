"""From records to run folders, and from run folders to metrics.

A *job* is one fold trained with one seed; its folder holds the model (model.safetensors),
config.json (resolved configuration, speakers, seeds, versions, input hashes), history.json,
curves.png and test.jsonl (its held-out records). Layouts:

    RUN/                      one job (no --cv, one seed): the job folder is RUN itself
    RUN/run.json              several jobs (--cv and/or --seeds): RUN/fold-XX-seed-Y/ each
    RUN/sweep.json            a --sweep: RUN/KEY=VALUE/ each a run of one of the above kinds

`evaluate_run` predicts every job's test part and writes RUN/metrics.json: mean, std and a 95%
confidence interval over folds x seeds, and the metrics of all test predictions pooled.
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

from sercli.cv import Fold, check_speakers, drop_leaking, speaker, split_val
from sercli.errors import SercliError
from sercli.log import info, warn

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.json"
Record = dict[str, Any]


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

    def single(self) -> bool:
        return self.protocol == "holdout" and len(self.folds) == 1 and len(self.seeds) == 1


def select_labels(records: list[Record], classes: list[str]) -> tuple[list[str], list[Record]]:
    """The emotions to learn (``classes`` or all, sorted) and the records that have one."""
    present = sorted({r["emotion"] for r in records})
    labels = classes or present
    unknown = sorted(set(present) - set(labels))
    if unknown and classes:
        warn(f"ignoring records with emotions outside --classes: {', '.join(unknown)}")
    kept = [r for r in records if r["emotion"] in labels]
    if not kept:
        raise SercliError(f"no records with emotions {', '.join(labels)}")
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

def clear_markers(out: Path) -> None:
    """Forget what an earlier run in the same folder was, so its kind is not mistaken."""
    for name in (RUN_FILE, SWEEP_FILE, "metrics.json"):
        (Path(out) / name).unlink(missing_ok=True)


def run_plan(plan: Plan, out: Path) -> dict[str, Any] | None:
    """Train every fold x seed into ``out``; then evaluate the test parts (if any)."""
    from sercli.data import feature_meta

    out = Path(out)
    clear_markers(out)
    # One feature kind for everything, checked before the first minute of training.
    feature_meta([r for f in plan.folds for r in f.pool + f.test + (f.val or [])] + plan.synthetic)
    resolved = _resolved(plan)
    jobs = []
    for fold in plan.folds:
        for seed in plan.seeds:
            name = "." if plan.single() else f"{fold.name}-seed-{seed}"
            summary = train_job(plan, fold, seed, out / name, resolved)
            jobs.append({"name": name, "fold": fold.name, "seed": seed, **summary})
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
        (out / RUN_FILE).write_text(json.dumps(manifest, indent=2))
    if any(f.test for f in plan.folds):
        return evaluate_run(out)
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


def train_job(plan: Plan, fold: Fold, seed: int, out: Path, resolved: dict[str, Any]) -> dict[str, Any]:
    """Train one fold with one seed (choosing among --tune values by validation UA)."""
    from sercli import plugins as pl
    from sercli.data import Examples, feature_meta
    from sercli.report import training_curves
    from sercli.train import Trainer, save_model

    train, val = split_val(fold, plan.val_fraction, seed)
    check_speakers(train + val, fold.test, plan.allow_speaker_overlap, fold.name)
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
    (out / "history.json").write_text(json.dumps(history, indent=1))
    training_curves(history, out / "curves.png", title=f"{plan.strategy} {fold.name} seed {seed}")
    _write_jsonl(out / "test.jsonl", fold.test)
    _write_jsonl(out / "leaked.jsonl", [{"id": r.get("id"), "text": r.get("text")} for r in leaked])
    return {"n_train": len(real_ex), "n_synthetic": len(syn_ex), "n_dropped_leak": len(leaked),
            "val_UA": val_metrics["UA"]}


def _write_jsonl(path: Path, records: list[Record]) -> None:
    if records:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    elif path.exists():
        path.unlink()


# -- evaluation ---------------------------------------------------------------------------------

def kind(run: Path) -> str:
    run = Path(run)
    if (run / SWEEP_FILE).exists():
        return "sweep"
    if (run / RUN_FILE).exists():
        return "cv"
    if (run / "config.json").exists():
        return "single"
    raise SercliError(f"{run} is not a sercli run folder (no config.json, {RUN_FILE} or {SWEEP_FILE})")


def jobs_of(run: Path) -> list[dict[str, Any]]:
    """[{"name", "fold", "seed", "dir"}] of a run folder (not a sweep)."""
    run = Path(run)
    if kind(run) == "cv":
        manifest = json.loads((run / RUN_FILE).read_text())
        return [{**j, "dir": run / j["name"]} for j in manifest["jobs"]]
    config = json.loads((run / "config.json").read_text())
    return [{"name": ".", "fold": config.get("fold", {}).get("name", "fold-00"),
             "seed": config["train"]["seed"], "dir": run}]


def sweep_runs(run: Path) -> list[Path]:
    manifest = json.loads((Path(run) / SWEEP_FILE).read_text())
    return [Path(run) / name for name in manifest["runs"]]


def evaluate_job(job_dir: Path, records: list[Record] | None = None, allow_overlap: bool = False):
    """(metrics, predictions) of one job on ``records`` (default: its own test part)."""
    import numpy as np

    from sercli.data import Examples, feature_meta
    from sercli.metrics import compute_metrics
    from sercli.records import read_records
    from sercli.train import load_model

    model, config = load_model(job_dir)
    if records is None:
        default = Path(job_dir) / "test.jsonl"
        if not default.exists():
            raise SercliError(f"{job_dir} has no held-out test part: pass test records, or train with --cv or --test-speakers")
        records = read_records(default)
        # the run's own test part: overlapping speakers were allowed explicitly at training time
        allow_overlap = allow_overlap or config.get("allow_speaker_overlap", False)
    if feature_meta(records) != config["features"]:
        raise SercliError("the test records' features were extracted with other settings than the model's")
    seen = [{"speaker": s} for s in config["speakers"]["train"] + config["speakers"]["val"]]
    check_speakers(seen, records, allow_overlap, str(job_dir))
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


def evaluate_run(run: Path, records: list[Record] | None = None, allow_overlap: bool = False) -> dict[str, Any]:
    """Evaluate every job of a run; write per-job and aggregate reports; return the aggregate."""
    from sercli.report import aggregate, confusion_png

    run = Path(run)
    jobs = jobs_of(run)
    results = []
    for job in jobs:
        metrics, predictions = evaluate_job(job["dir"], records, allow_overlap)
        _write_jsonl(job["dir"] / "predictions.jsonl", predictions)
        if job["dir"] != run:
            (job["dir"] / "metrics.json").write_text(json.dumps(metrics, indent=2))
        results.append((job, metrics, predictions))
    config = json.loads((jobs[0]["dir"] / "config.json").read_text())
    agg = aggregate(results, labels=config["labels"], strategy=config["strategy"],
                    protocol=config.get("fold", {}).get("protocol", "holdout"))
    (run / "metrics.json").write_text(json.dumps(agg, indent=2))
    confusion_png(agg["pooled"], run / "confusion.png", title=f"{run.name}: pooled test predictions")
    return agg
