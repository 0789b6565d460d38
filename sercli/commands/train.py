"""`sercli train`: a downstream head on real features, plus synthetic ones by a strategy,
under an evaluation protocol (held-out speakers, or cross-validation over folds x seeds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sercli.core import plugins as pl
from sercli.commands.train_options import finetune_spec, with_targets
from sercli.commands.train_options import targets as _targets
from sercli.commands.train_options import seed_list as _seed_list
from sercli.commands.train_options import route_options as _route_options
from sercli.commands.train_options import runner as _runner
from sercli.commands.train_options import split as _split
from sercli.commands.train_options import tune_grid as _tune_grid
from sercli.commands.train_options import value_lists as _value_lists
from sercli.core.errors import SercliError
from sercli.core.log import info, show
from sercli.core.options import Dedupe, Device, Inputs, LabelSet


# `train --help` in groups (sercli.cli sets each option's rich_help_panel from this)
HELP_PANELS = {
    "Data": ("synthetic", "target", "classes", "labels", "dedupe", "test", "real_fraction"),
    "Protocol": ("cv", "seeds", "test_speakers", "val_speakers", "val_fraction", "allow_speaker_overlap"),
    "Model": ("head", "strategy", "option", "sweep", "norm"),
    "Training": ("epochs", "patience", "restarts", "lr", "weight_decay", "batch_size", "balanced", "standardize",
                 "tune", "search", "refit"),
    "Fine-tuning (audio records)": ("finetune", "finetune_mode", "finetune_layers", "lora_rank", "backbone_lr"),
    "Output and resources": ("out", "overwrite", "tracker", "jobs", "threads", "device", "devices", "cluster"),
}


def train(
    inputs: Inputs,
    out: Annotated[Path, typer.Option("--out", help="Run folder for the models and reports.")],
    synthetic: Annotated[
        Optional[list[str]], typer.Option("--synthetic", help="Synthetic feature records (repeatable).")
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy plugin (see `sercli plugins`).")] = "real-only",
    head: Annotated[
        Optional[str],
        typer.Option("--head", help="Head plugin (default: sercli's recommended head; config.json names it). "
                     "`sercli plugins NAME` lists a head's options; set them with -O KEY=VALUE."),
    ] = None,
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", "-O", help="Head, strategy or tracker option KEY=VALUE (repeatable); head.KEY or "
                     "strategy.KEY when both have KEY, tracker.KEY for --tracker. `sercli plugins NAME` lists them."),
    ] = None,
    sweep: Annotated[
        Optional[list[str]],
        typer.Option("--sweep", help="Strategy option KEY=V1,V2,... to sweep: one run subfolder per value (repeatable)."),
    ] = None,
    cv: Annotated[
        Optional[str],
        typer.Option(
            "--cv",
            help="Cross-validation: loso (speakers), loso-session, kfold:K (grouped by speaker), field:NAME (given "
            "partitions: train, dev, test or Test1, Test2...: one fold per test partition), loo:NAME (leave one value out).",
        ),
    ] = None,
    seeds: Annotated[str, typer.Option("--seeds", "--seed", help="Seed, or comma-separated seeds (one run per fold and seed).")] = "0",
    test_speakers: Annotated[
        Optional[str], typer.Option("--test-speakers", help="Speakers held out for testing (without --cv).")
    ] = None,
    test: Annotated[
        Optional[list[str]], typer.Option("--test", help="Test feature records from elsewhere (without --cv; repeatable).")
    ] = None,
    val_speakers: Annotated[
        Optional[str], typer.Option("--val-speakers", help="Validation speakers (without --cv; default: ~20% of the speakers).")
    ] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.05, max=0.5, help="Share of training speakers for validation.")] = 0.2,
    real_fraction: Annotated[float, typer.Option("--real-fraction", help="Keep this share of every non-test speaker's real "
                             "utterances, training and validation alike (seeded, speaker x emotion stratified; the test "
                             "fold stays whole).")] = 1.0,
    target: Annotated[Optional[str], typer.Option("--target", help="Numeric record fields to predict instead of the "
                      "emotion (arousal,valence,dominance: regression heads, CCC loss); add emotion for a multi-task "
                      "head (emotion,arousal). Records without a target are skipped, with a count.")] = None,
    classes: Annotated[Optional[str], typer.Option("--classes", help="Emotions to learn (default: all).")] = None,
    labels: LabelSet = None,
    dedupe: Dedupe = False,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="At most this many epochs (per stage).")] = 60,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Early-stopping patience (epochs).")] = 10,
    restarts: Annotated[int, typer.Option("--restarts", min=0, help="After early stopping, N more rounds from the "
                                          "weights kept, each with a new optimiser (helps scarce data).")] = 0,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (AdamW).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0)] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    balanced: Annotated[bool, typer.Option("--balanced/--no-balanced", help="Class-weighted loss.")] = True,
    standardize: Annotated[bool, typer.Option("--standardize/--no-standardize", help="Z-score features with training statistics.")] = True,
    tune: Annotated[
        Optional[list[str]],
        typer.Option("--tune", help="Choose KEY among V1,V2,... per fold by validation UA (repeatable; a trainer key "
                     "or a head option, e.g. lr=1e-3,3e-4 or hidden=64,256)."),
    ] = None,
    search: Annotated[
        int, typer.Option("--search", min=0, help="Optuna trials per training fold over the head's search space, "
                          "learning rate and weight decay (scored on the fold's validation part; 0: none).")
    ] = 0,
    norm: Annotated[
        str, typer.Option("--norm", help="speaker: standardise features per speaker (test speakers from their own "
                          "unlabelled utterances); none; auto (default): speaker when every record has a speaker with "
                          "enough utterances and no --finetune, else none.")
    ] = "auto",
    refit: Annotated[
        Optional[bool], typer.Option("--refit/--no-refit", help="After early stopping, retrain on training + validation "
                                     "data for the epochs found (default: on, off with --finetune).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPU threads for training (per job).")] = 1,
    jobs: Annotated[
        Optional[int], typer.Option("--jobs", "-j", min=1, help="Train this many folds x seeds at once (worker "
                                    "processes, or cluster workers; same numbers). Default: 1; with --cluster, one "
                                    "per CPU (per GPU with --device cuda) it has.")
    ] = None,
    allow_speaker_overlap: Annotated[
        bool, typer.Option("--allow-speaker-overlap", help="Allow the same speakers in training and test parts.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out run, once the new one is complete.")
    ] = False,
    finetune: Annotated[
        Optional[str],
        typer.Option("--finetune", help="Fine-tune this backbone's encoder with the head, on audio records (no "
                     "features needed): LoRA adapters or its top layers; the run keeps only what changed."),
    ] = None,
    finetune_mode: Annotated[
        str, typer.Option("--finetune-mode", help="lora: LoRA adapters (peft) on its attention; top: its top layers.")
    ] = "lora",
    finetune_layers: Annotated[int, typer.Option("--finetune-layers", min=1, help="Layers that learn (--finetune-mode top).")] = 2,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1, help="Rank of the LoRA adapters.")] = 8,
    backbone_lr: Annotated[
        Optional[float], typer.Option("--backbone-lr", help="Learning rate of the encoder (default 1e-4 lora, 5e-5 top; --lr is the head's).")
    ] = None,
    tracker: Annotated[
        Optional[str], typer.Option("--tracker", help="Also send the run, once in place, to this experiment tracker (e.g. "
                                    "tensorboard: RUN/tensorboard/); its options: -O tracker.KEY=VALUE. If it fails, "
                                    "the run is kept, exit 1: retry with `sercli track RUN`.")
    ] = None,
    device: Device = "cpu",
    devices: Annotated[
        Optional[str], typer.Option("--devices", help="Train on these devices, one job per device at a time: "
                                    "cuda:0,cuda:1 or all (every GPU here).")
    ] = None,
    cluster: Annotated[
        Optional[str], typer.Option("--cluster", help="Train the folds x seeds on a cluster's workers: ray (a local "
                                    "one) or ray://HEAD:10001 (a job whose worker dies trains again on another). The "
                                    "run folder and the feature store must be on a filesystem its workers share.")
    ] = None,
) -> None:
    """Train a head; the run folder then feeds `sercli eval` and `sercli predict`.

    With --cv, every fold is trained with every seed into RUN/fold-XX-seed-Y/ and the test
    folds are evaluated at the end (RUN/metrics.json). Each fold's validation part is taken
    from its training speakers; the test fold is never used for any choice. The run is built
    in a temporary folder next to --out and appears there only when complete; an existing
    --out is refused unless --overwrite is given.

    Examples:
      sercli train feats.jsonl --test-speakers 03,08 --out runs/real
      sercli train feats.jsonl --synthetic synth.jsonl --strategy mix --cv loso
        --seeds 0,1,2 --out runs/mix
      sercli train feats.jsonl --cv loso --head mlp -O hidden=64 --out runs/mlp
      sercli train msp.jsonl --target arousal,valence,dominance --cv loso
        --out runs/avd
      sercli train audio.jsonl --finetune wavlm-base-plus --cv loso --out runs/ft
      sercli train feats.jsonl --cv loso --tracker tensorboard --out runs/tb
      sercli train f.jsonl --cv loso --cluster ray://head:10001 --out /shared/cv
      sercli train f.jsonl --cv loso --devices cuda:0,cuda:1 --out runs/gpus
    """
    from sercli.core.inputs import read_inputs
    from sercli.core.runfolder import check_target
    from sercli.runs.jobs import select_labels
    from sercli.learning.scarce import check_fraction
    from sercli.learning.train import DEFAULT_HEAD, TrainConfig
    from sercli.learning.heads import check_frames

    head = head or DEFAULT_HEAD
    seed_list = _seed_list(seeds, cv, test_speakers, test, val_speakers)
    runner = _runner(jobs, device, devices, cluster)
    check_target(out, overwrite)  # again under the lock, before the run is put in place

    tuned = finetune_spec(finetune, finetune_mode, finetune_layers, lora_rank, backbone_lr, norm)
    refit = (not tuned) if refit is None else refit
    classify, targets = _targets(target, classes)
    needed = ("emotion",) if classify else ()
    wanted, check = _labels(classes, labels, classify)
    # features or audio of --test records: checked with the rest by sercli.runs.jobs
    real, synth, tests = read_inputs([(inputs, needed + (("audio",) if tuned else ("features",))),
                                      (synthetic or [], needed + ("features",)), (test or [], needed)],
                                     dedupe, check, targets)
    real, synth, tests = with_targets(real, synth, tests, targets)
    labels, real = select_labels(real, wanted) if classify else ([], real)
    tracking = _tracker(tracker, option)
    head_options, options = _route_options([o for o in option or [] if not o.startswith("tracker.")], head, strategy)
    swept = _value_lists(sweep, "--sweep")
    variants, names = _variants(strategy, options, swept)
    folds, protocol = _folds(real, labels, cv, _split(test_speakers), _split(val_speakers), test, tests,
                             allow_speaker_overlap)
    cfg = TrainConfig(
        head=head, head_options=head_options, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
        max_epochs=epochs, patience=patience, restarts=restarts, balanced=balanced, standardize=standardize,
        seed=seed_list[0], device=device, threads=threads, refit=refit, norm=norm, search=search, finetune=tuned,
        targets=targets,
    )
    check_frames(head, real + synth)
    base = dict(
        labels=labels, folds=folds, seeds=seed_list, strategy=strategy, cfg=cfg, protocol=protocol,
        synthetic=synth, tune=_tune_grid(tune, head, cfg.head_options), val_fraction=val_fraction,
        real_fraction=check_fraction(real_fraction),
        inputs=list(inputs) + list(synthetic or []) + list(test or []),
        allow_speaker_overlap=allow_speaker_overlap, tracker=tracker,
    )
    if tracking is not None:  # where it would write, before any work (sercli.runs.tracking)
        from sercli.runs.tracking import check_places

        check_places(tracking, out / tracking.name, own=out)
    untracked = _train_runs(base, options, swept, variants, names, out, overwrite, runner, tracking)
    info(f"Run folder: {out}  (evaluate again with `sercli eval {out}`)")
    if untracked:  # the runs are complete and kept; exit 1 says that part of the command failed
        again = " ".join(["--tracker", tracker, *(f"-O {o.partition('.')[2]}" for o in option or []
                                                   if o.startswith("tracker."))])
        raise SercliError(f"{len(untracked)} run(s) trained and kept, but not tracked (see the warning above); "
                          f"send again with `sercli track {untracked[0]} {again}`")


def _tracker(name: str | None, option: list[str] | None):
    """The --tracker plugin with its -O tracker.KEY=VALUE options (checked before training)."""
    from sercli.core import plugins
    from sercli.contract.common import parse_option_pairs

    pairs = [o.partition(".")[2] for o in option or [] if o.startswith("tracker.")]
    if name is None:
        if pairs:
            raise SercliError("-O tracker.KEY=VALUE needs --tracker NAME")
        return None
    return plugins.create("tracker", name, parse_option_pairs(pairs))


def _variants(strategy: str, options: dict[str, Any], swept: dict[str, list[str]]):
    """The option sets of a --sweep ([{}] without one) and their run names, each checked."""
    overlap = set(swept) & set(options)
    if overlap:
        raise SercliError(f"{', '.join(sorted(overlap))}: given both with -O and --sweep")
    variants = [dict(zip(swept, values)) for values in _product(swept)] if swept else [{}]
    names = [_sweep_name(v) for v in variants]
    if len(set(names)) != len(names):
        raise SercliError("--sweep: two values give the same run name; give each value once")
    resolved_options = []  # every option set is checked before the first minute of training
    for v in variants:
        resolved_options.append(json.dumps(pl.create("strategy", strategy, {**options, **v}).provenance(),
                                           sort_keys=True))
    if len(set(resolved_options)) != len(resolved_options):
        same = ["+".join(f"{k}={x}" for k, x in v.items())
                for v, o in zip(variants, resolved_options) if resolved_options.count(o) > 1]
        raise SercliError(f"--sweep: {' and '.join(same[:2])} are the same setting (the values read the same); "
                          "give each value once")
    return variants, names


def _labels(classes: str | None, labels: str | None, classify: bool = True):
    """(the --classes, each as the label set spells it; how the records' emotions are checked).
    With --classes, records of other emotions are left out (with a warning naming them), so an
    emotion sercli does not know is no error there; a --classes entry it does not know is.
    A run that learns no emotion (``classify`` False) only normalises the ones it is given."""
    from sercli.core.inputs import LabelCheck

    check = LabelCheck.from_cli(labels, strict=classify)
    wanted = []
    for name in _split(classes):
        found = check.normalise(name)
        if found is None:
            raise check.refusal(name, "--classes")
        wanted.append(found)
    if wanted:
        check.strict = False
    return wanted, check


def _folds(real, labels, cv, test_speakers, val_speakers, test, tests, allow_speaker_overlap):
    """(folds, protocol) of --cv, or the one hold-out fold of --test-speakers / --test."""
    from sercli.learning.cv import holdout, make_folds

    if cv:
        return make_folds(real, cv, allow_speaker_overlap=allow_speaker_overlap), cv
    fold = holdout(real, test_speakers, val_speakers)
    if test:
        fold.test = _test_records(test, tests, labels) if labels else tests
        fold.description = f"test records {', '.join(test)}"
    return [fold], "holdout"


def _train_runs(base, options, swept, variants, names, out: Path, overwrite: bool, runner: dict[str, Any],
                tracking=None) -> list[Path]:
    """Train (one run, or one per --sweep value), evaluate the test parts, put the folder in place
    (``runner``: see `_runner`; a --cluster is joined once, for every run), then send each run,
    from its final folder, to ``tracking``; the runs it failed on (each a warning)."""
    from contextlib import ExitStack

    from sercli.core.cluster import open_cluster
    from sercli.commands.tables import aggregate_table, compare_table, wide_console
    from sercli.evaluation.evaluate import compare, evaluate_jobs
    from sercli.core.runfolder import staged, write_sweep
    from sercli.evaluation.write import write_evaluation
    from sercli.runs.jobs import Plan, plan_splits, run_plan

    strategy = base["strategy"]
    if base["cfg"].norm == "auto":
        from dataclasses import replace

        from sercli.runs.jobs import resolve_norm

        base["cfg"] = replace(base["cfg"], norm=resolve_norm(Plan(strategy_options=options, **base)))
    base["splits"] = plan_splits(Plan(strategy_options=options, **base))  # refusals before any training
    results = []
    spec, cluster = runner["cluster"], None
    if spec and len(base["folds"]) * len(base["seeds"]) == 1:
        info(f"--cluster {spec}: a single job (one fold, one seed) has nothing to spread; it trains here")
        spec = None
    with staged(out, overwrite=overwrite) as build, ExitStack() as stack:
        if spec:
            cluster = stack.enter_context(open_cluster(spec))
        for v, name in zip(variants, names):
            run_dir = build / name if swept else build
            if swept:
                info(f"== {strategy} {name} ==")
                run_dir.mkdir()
            trained = run_plan(Plan(strategy_options={**options, **v}, **base), run_dir, jobs=runner["jobs"],
                               cluster=cluster, devices=runner["devices"])
            agg = None
            if trained:
                agg, evaluated = evaluate_jobs(trained, warn_absent=False,
                                               where=lambda job: run_dir if job.name == "." else run_dir / job.name)
                title = f"{out.name}/{name}" if swept else out.name
                write_evaluation(run_dir, evaluated, agg, title=f"{title}: pooled test predictions")
                from sercli.evaluation.report import write_layer_weights

                write_layer_weights(run_dir, run_dir / "layer_weights.png")
            results.append((name or str(out), agg))
            if agg is not None and not swept:
                show(aggregate_table(agg, title=f"{strategy} on the test folds of {out}"))
        if swept:
            write_sweep(build, swept, names)
    untracked = []
    for name in names if tracking is not None else []:  # the folder is final now: its own path
        from sercli.core.log import warn
        from sercli.runs.tracking import send

        final = out / name if swept else out
        problem = send(tracking, final, final / tracking.name)
        if problem:
            warn(problem)
            untracked.append(final)
    if swept and all(agg is not None for _, agg in results):
        from sercli.commands.tables import describe_run

        rows = compare(results)
        for row, name in zip(rows, names):
            row.update(describe_run(out / name))
        show(compare_table(rows), wide_console())
    return untracked


def _sweep_name(values: dict[str, str]) -> str:
    """RUN/KEY=VALUE+KEY=VALUE: each part a safe file name, whatever the value."""
    from sercli.core.fsutil import safe_name

    name = "+".join(f"{safe_name(k)}={safe_name(v)}" for k, v in values.items())
    return name if len(name) <= 120 else safe_name(name)


def _test_records(paths: list[str], records: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """--test records with a learnt emotion; the others are reported, and none at all refused."""
    from sercli.core.log import warn

    kept = [r for r in records if r["emotion"] in labels]
    others = sorted({str(r["emotion"]) for r in records} - set(labels))
    if not kept:
        raise SercliError(f"--test {', '.join(paths)}: no records with the emotions learnt ({', '.join(labels)})")
    if others:
        warn(f"--test: ignoring {len(records) - len(kept)} records with emotions not learnt: {', '.join(others)}")
    return kept


def _product(swept: dict[str, list[str]]):
    import itertools

    return itertools.product(*swept.values())
