"""Training, from records to the jobs of a run folder (layout: sercli.core.runfolder).

A *job* is one fold trained with one seed; its folder holds the model (model.safetensors),
config.json (resolved configuration, speakers, seeds, versions, plugin versions, input hashes),
history.json, curves.png and test.jsonl (its held-out records). `run_plan` trains every job,
one after another, ``jobs`` at a time in worker processes or one per device of ``--devices`` at
a time (joblib), or on a cluster's workers (the same numbers every way: each job seeds itself),
and returns the trained jobs; evaluating them is
`sercli.evaluation.evaluate`'s part, putting the folder in place `sercli.core.runfolder.staged`'s.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from joblib import Parallel

from sercli.contract.cluster import ShardWorker
from sercli.learning.cv import Fold, check_fold, check_speakers, speaker
from sercli.core.errors import SercliError
from sercli.core.fsutil import safe_name
from sercli.core.inputs import warn_scarce
from sercli.core.log import info, warn
from sercli.core.runfolder import (
    CURVES_FILE, HISTORY_FILE, LEAKED_FILE, RUN_FILE, TEST_FILE, child, plugin_versions, provenance, write_json,
    write_jsonl,
)
from sercli.learning import fold as prep
from sercli.learning.scarce import warn_language
from sercli.learning.speakernorm import speakers_of
from sercli.runs.summary import job_line, learned_from

Record = dict[str, Any]
Splits = dict[tuple[int, int], prep.Split]


@dataclass
class Plan:
    """Everything that decides a run's numbers (written to run.json / config.json)."""

    labels: list[str]
    folds: list[Fold]
    seeds: list[int]
    strategy: str
    strategy_options: dict[str, Any]
    cfg: Any  # sercli.learning.train.TrainConfig
    protocol: str
    synthetic: list[Record] = field(default_factory=list)
    tune: dict[str, list[Any]] = field(default_factory=dict)
    val_fraction: float = 0.2
    real_fraction: float = 1.0  # share of each non-test speaker's real data kept (sercli.learning.fold)
    inputs: list[str] = field(default_factory=list)
    allow_speaker_overlap: bool = False  # the one route: checked here, recorded for `eval`
    splits: Splits | None = None  # (fold index, seed) -> the job's records, from `plan_splits`
    tracker: str | None = None  # --tracker: decides no number, its plugin's version is recorded

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


# -- training -----------------------------------------------------------------------------------

def split_of(plan: Plan, fold: Fold, seed: int, synthetic: bool = True) -> prep.Split:
    """A job's records, from the one place that prepares a fold (sercli.learning.fold)."""
    return prep.split(fold, seed, val_fraction=plan.val_fraction, real_fraction=plan.real_fraction,
                      synthetic=plan.synthetic if synthetic else [])


def plan_splits(plan: Plan) -> Splits:
    """Every fold x seed's records (`split_of`), checked before the first minute of training: a fold that
    cannot learn every emotion or choose fairly is refused; what only narrows its numbers
    (a test part without some emotion) is warned about once."""
    if plan.tune and plan.cfg.search:
        raise SercliError("use either --search N or --tune, not both")
    splits: Splits = {}
    warnings: list[str] = []
    speaker_norm = plan.cfg.norm == "speaker"
    if speaker_norm and plan.synthetic:
        speakers_of(plan.synthetic, "--synthetic")
    warn_language([r for f in plan.folds for r in f.pool + f.test], plan.synthetic)
    if plan.folds:
        prep.check_sources(plan.synthetic, plan.folds[0].pool + plan.folds[0].test + (plan.folds[0].val or []))
    for i, fold in enumerate(plan.folds):
        if speaker_norm:
            speakers_of(fold.test, f"{fold.name} test part")
        for seed in plan.seeds:
            job = split_of(plan, fold, seed)
            train, val = job.train, job.val
            check_speakers(train + val, fold.test, plan.allow_speaker_overlap, fold.name, fold.given)
            if plan.labels:  # a regression run has no classes to hold (--target without emotion)
                warnings += check_fold(fold, train, val, plan.labels, seed)
            if speaker_norm:
                speakers_of(train, f"{fold.name} training part (seed {seed})")
                speakers_of(val, f"{fold.name} validation part (seed {seed})")
            splits[(i, seed)] = job
    for message in dict.fromkeys(warnings):
        warn(message)
    if plan.labels:
        warn_scarce([job.train for job in splits.values()], plan.labels)
    return splits


def resolve_norm(plan: Plan) -> str:
    """What ``--norm auto`` (train's default) means for this plan: "speaker" when every part of
    every fold x seed (and the synthetic data) can be normalised speaker by speaker, and the
    features are stored (no fine-tuning); else "none". One info line says which, and why."""
    from sercli.learning.speakernorm import TooFewUtterances

    if plan.cfg.finetune:
        return "none"
    try:
        if plan.synthetic:
            speakers_of(plan.synthetic, "--synthetic")
        for fold in plan.folds:
            speakers_of(fold.test, f"{fold.name} test part")
            for seed in plan.seeds:
                job = split_of(plan, fold, seed, synthetic=False)
                speakers_of(job.train, f"{fold.name} training part")
                speakers_of(job.val, f"{fold.name} validation part")
    except TooFewUtterances as exc:
        info(f"--norm auto: none ({str(exc).split(', --norm')[0].split('; --norm')[0]})")
        return "none"
    info("--norm auto: speaker (each speaker's features standardised with its own statistics; --norm none: off)")
    return "speaker"


def job_name(fold: Fold, seed: int) -> str:
    return safe_name(f"{fold.name}-seed-{seed}")


def run_plan(plan: Plan, out: Path, jobs: int | None = 1, cluster: Any = None,
             devices: list[str] | None = None) -> list[Any]:
    """Train every fold x seed into the (new, empty) folder ``out`` (see `trained_jobs` for
    ``jobs``, ``cluster`` and ``devices``); the trained jobs (`sercli.evaluation.evaluate.Job`) that have
    a test part, in fold x seed order."""
    from sercli.features.read import feature_meta
    from sercli.evaluation.evaluate import Job

    out = Path(out)
    # One feature kind for everything (audio when fine-tuning), checked before the first minute of training.
    everything = [r for f in plan.folds for r in f.pool + f.test + (f.val or [])] + plan.synthetic
    if plan.cfg.finetune:
        from sercli.learning.finetune import check_records

        check_records(everything)
        backbone = plan.cfg.finetune.get("backbone")
    else:
        backbone = (feature_meta(everything).get("backbone") or {}).get("plugin")
    splits = plan.splits or plan_splits(plan)
    resolved = _resolved(plan, backbone)
    todo = []
    for i, fold in enumerate(plan.folds):
        for seed in plan.seeds:
            name = "." if plan.single() else job_name(fold, seed)
            todo.append((name, fold, seed, out if name == "." else child(out, name), splits[(i, seed)]))
    slim = replace(plan, folds=[], splits=None, synthetic=[])  # what a job needs besides its records
    args = [(slim, fold, seed, job_dir, resolved, split) for _, fold, seed, job_dir, split in todo]
    from sercli.core.log import progress

    with progress() as bar:  # jobs done, on stderr (none with -q)
        task = bar.add_task("train: jobs", total=len(todo))
        trained = trained_jobs(args, jobs, cluster, devices, done=lambda n: bar.update(task, completed=n))
    entries, done = [], []
    for (name, fold, seed, job_dir, job), (summary, model, config) in zip(todo, trained):
        entries.append({"name": name, "fold": fold.name, "seed": seed, **summary})
        info(job_line(fold, seed, summary))
        message = prep.dropped_message(f"{fold.name} seed {seed}", job.dropped)
        if message:
            warn(message)
        if fold.test:
            done.append(Job(name, fold.name, seed, model, config, fold.test))
    info(learned_from([job for *_, job in todo]))
    if plan.synthetic:
        took = sum(1 for _, _, config in trained if (config.get("counts") or {}).get("synthetic_used", 0) > 0)
        info(f"Synthetic data: used by {took} of {len(trained)} jobs ({plan.strategy})")
    if not plan.single():
        write_json(out / RUN_FILE, {
            "kind": "cv",
            "protocol": plan.protocol,
            "labels": plan.labels,
            **({"targets": plan.cfg.targets} if plan.cfg.targets else {}),
            "folds": [
                {"name": f.name, "description": f.description, "test_speakers": sorted({speaker(r) for r in f.test}),
                 "n_test": len(f.test)}
                for f in plan.folds
            ],
            "seeds": plan.seeds,
            "jobs": entries,
            **resolved,
        })
    return done


def trained_jobs(args: list[tuple], jobs: int | None = 1, cluster: Any = None, devices: list[str] | None = None,
                 done: Callable[[int], None] | None = None) -> list[Any]:
    """Each job's `train_job` result, in order: through joblib ``jobs`` at a time (None: all) in
    worker processes, or with ``devices`` one job per device at a time (each job's
    TrainConfig.device is the device it got); with ``cluster`` (a connected
    `sercli.base.Cluster`), on its workers (`_on_cluster`). ``done(n)`` is told how many jobs
    have finished, as they do."""
    if cluster is not None:
        return _on_cluster(args, jobs, cluster, done)
    from joblib import delayed

    n = min(len(devices) if devices else jobs or len(args), len(args))
    with ExitStack() as stack:
        if devices and n > 1:
            import multiprocessing

            free = stack.enter_context(multiprocessing.Manager()).Queue()  # the devices no job holds
            for device in devices:
                free.put(device)
            tasks = (delayed(_on_free_device)(free, a) for a in args)
        else:  # one at a time: here
            tasks = (delayed(train_job)(*(_on_device(a, devices[0]) if devices else a)) for a in args)
        return _Parallel(n_jobs=n, done=done)(tasks)


def _on_cluster(args: list[tuple], jobs: int | None, cluster: Any, done: Callable[[int], None] | None) -> list[Any]:
    """The jobs as shards of one job on the cluster's workers, ``jobs`` at a time (None: one
    per CPU, or per GPU with --device cuda, of the cluster). A job whose worker dies is trained
    again on another: it seeds itself and rewrites its own folder, so nothing changes. Workers
    read the feature store and write their job folders themselves: both must be on a
    filesystem every worker sees at the same path (NFS, a shared disk)."""
    results: dict[int, Any] = {}

    def finished(i: int, result: list[Any]) -> None:
        results[i] = result[0]
        if done is not None:
            done(len(results))

    gpus = 0.0 if args[0][0].cfg.device == "cpu" else 1.0
    cluster.map_shards(_JobWorker(), [[a] for a in args], workers=jobs, gpus=gpus, on_result=finished)
    return [results[i] for i in range(len(args))]


class _JobWorker(ShardWorker):
    """Trains a shard's jobs on a cluster worker, on the device the cluster gave it."""

    def setup(self, device: str) -> None:
        self.device = device

    def __call__(self, shard: list[tuple]) -> list[Any]:
        return [train_job(*_on_device(a, self.device)) for a in shard]


class _Parallel(Parallel):
    """joblib's Parallel telling ``done`` how many tasks have finished (whatever the backend)."""

    def __init__(self, *args: Any, done: Callable[[int], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.done = done

    def print_progress(self) -> None:  # called by joblib as each batch of tasks ends
        if self.done is not None:
            self.done(self.n_completed_tasks)


def _on_device(args: tuple, device: str) -> tuple:
    """`train_job`'s arguments with the plan's TrainConfig on ``device``."""
    plan, *rest = args
    return (replace(plan, cfg=replace(plan.cfg, device=device)), *rest)


def _on_free_device(free: Any, args: tuple):
    """`train_job` on a device taken from the queue ``free``, given back when it ends."""
    device = free.get()
    try:
        return train_job(*_on_device(args, device))
    finally:
        free.put(device)


def _resolved(plan: Plan, backbone: str | None) -> dict[str, Any]:
    """What every job's config.json and a CV run's run.json record besides the job's own parts."""
    from sercli.learning.train import config_dict

    used = {"strategy": plan.strategy, "head": plan.cfg.head, "backbone": backbone or "", "tracker": plan.tracker}
    return {
        "strategy": {"name": plan.strategy, "options": plan.strategy_options},
        "train": config_dict(plan.cfg),
        "tune": plan.tune,
        "val_fraction": plan.val_fraction,
        "real_fraction": plan.real_fraction,
        "allow_speaker_overlap": plan.allow_speaker_overlap,
        **provenance(plan.inputs),
        "plugins": plugin_versions({k: v for k, v in used.items() if v}),  # {plugin: version}
    }


def train_job(
    plan: Plan, fold: Fold, seed: int, out: Path, resolved: dict[str, Any], job: prep.Split
) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Train one fold with one seed into ``out``: (summary, model, config). With --tune or
    --search, the recipe is chosen first by validation UA (sercli.learning.search), on the fold's
    training and validation parts only."""
    from sercli.core import plugins as pl
    from sercli.features.read import feature_meta
    from sercli.evaluation.figures import training_curves
    from sercli.learning.search import choose
    from sercli.learning.train import Trainer, config_dict, fit_strategy, save_model

    train, val, synthetic, leaked = job.train, job.val, job.synthetic, job.leaked
    real_ex, val_ex, syn_ex = prep.examples(job, plan.labels, norm=plan.cfg.norm, finetune=plan.cfg.finetune,
                                            where=f"{fold.name} (seed {seed})", targets=plan.cfg.targets)
    if len(syn_ex) < len(synthetic):
        warn(f"{len(synthetic) - len(syn_ex)} synthetic records have emotions not learnt; ignored")

    def fit(cfg):  # one trial: sees the training, validation and synthetic parts, nothing else
        strategy = pl.create("strategy", plan.strategy, plan.strategy_options)
        trainer = Trainer(cfg, plan.labels)
        model = fit_strategy(strategy, trainer, real_ex, syn_ex, val_ex)
        val_loss, val_metrics = trainer.evaluate(model, val_ex)
        row = {f"val_{k}": val_metrics[k] for k in ("WA", "CCC") if k in val_metrics}
        return val_metrics["score"], {**row, "val_loss": val_loss}, (model, trainer, val_metrics, strategy)

    chosen = choose(replace(plan.cfg, seed=seed), fit, grid=plan.tune, n_trials=plan.cfg.search, seed=seed,
                    where=f"{fold.name} seed {seed}: ")
    cfg = chosen.cfg
    model, trainer, val_metrics, strategy = chosen.kept
    history = trainer.history.epochs
    if cfg.refit:
        # The choices are made; now every training speaker counts, for the epochs found. The
        # refit's validation numbers are on data it trains on: they only draw the curve.
        trainer = Trainer(cfg, plan.labels, schedule=[e + 1 for e in trainer.best_epochs])
        model = fit_strategy(strategy, trainer, real_ex + val_ex, syn_ex, val_ex)
        history = history + [{**h, "stage": f"refit {h['stage']}"} for h in trainer.history.epochs]

    out.mkdir(parents=True, exist_ok=True)
    spk = lambda recs: sorted({speaker(r) for r in recs})  # noqa: E731
    if plan.cfg.finetune:  # audio in, the backbone (and what it was) recorded
        from sercli.learning.finetune import run_inputs

        features = run_inputs(plan.cfg.finetune)[1]
    else:
        features = feature_meta(train)
    provenance = strategy.provenance()
    config = {
        "labels": plan.labels,
        **({"targets": plan.cfg.targets} if plan.cfg.targets else {}),
        "features": features,
        "strategy": provenance,
        "train": config_dict(cfg),
        "fold": {"name": fold.name, "description": fold.description, "protocol": plan.protocol},
        "speakers": {"train": spk(train), "val": spk(val), "test": spk(fold.test)},
        "counts": {"train": len(real_ex), "val": len(val_ex), "test": len(fold.test), "synthetic": len(syn_ex),
                   "synthetic_dropped_leak": len(leaked), "synthetic_dropped": job.dropped,
                   **{f"{k}_used": v for k, v in (getattr(trainer, "used", None) or {}).items()}},
        "real": job.real_used(),  # the real utterances it learned from, and their share
        "tuning": chosen.trials if chosen.method else None,  # every trial: its parameters and scores
        "search": chosen.method,  # sampler, trials, seed, space and the chosen parameters
        "val_metrics": val_metrics,
        **{k: v for k, v in resolved.items() if k not in ("train", "strategy")},  # plugins too
    }
    save_model(model, out, config)
    write_json(out / HISTORY_FILE, history, indent=1)
    training_curves(history, out / CURVES_FILE, title=f"{plan.strategy} {fold.name} seed {seed}")
    write_jsonl(out / TEST_FILE, fold.test)
    write_jsonl(out / LEAKED_FILE, [{"id": r.get("id"), "text": r.get("text")} for r in leaked])
    summary = {"n_train": len(real_ex), "n_synthetic": len(syn_ex), "n_synthetic_used": trainer.used.get("synthetic"),
               "n_dropped_leak": len(leaked), **{f"val_{k}": val_metrics[k] for k in ("UA", "CCC") if k in val_metrics}}
    return summary, model.to("cpu"), {"head": model.config, **config}
