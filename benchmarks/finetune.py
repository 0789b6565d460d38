"""Fine-tuning measured end to end: the frozen default against LoRA and the top layers.

    python benchmarks/finetune.py emodb                                   # tiny.en and base, every mode
    python benchmarks/finetune.py emodb --backbones whisper-tiny.en --modes frozen,lora --folds 03,08
    python benchmarks/finetune.py tess --seeds 0,1

For one shared corpus (../shared/data, or $SERCLI_SHARED_DATA), leave one speaker out: one
``sercli train`` per test speaker and seed, each its own run folder, so a run that does not fit
at once goes on where it stopped (``--folds`` runs a part; every finished fold is kept and
reused). The modes, each on the same folds:

* ``frozen``: the default recipe, ``sercli extract -b BACKBONE --layers all --pool mean+std``
  once (cached; its time is reported apart) and ``sercli train FEATURES --test-speakers S``;
* ``lora``: ``sercli train AUDIO --finetune BACKBONE --finetune-mode lora`` (peft adapters on the
  encoder's attention, the default head on top);
* ``top``: ``--finetune-mode top --finetune-layers K`` (the top K encoder layers learn).

Each row: UA mean over folds x seeds with its 95% t-interval, pooled UA over every prediction,
the wall time (sum and per fold), the peak resident memory of one training process, and
training samples per second (training utterances x epochs run / wall time). Markdown to stdout,
all numbers to $SERCLI_BENCH_DIR/CORPUS/finetune.json. Not part of CI: a LOSO fine-tuning run
takes hours on a 2-core CPU.

Every finished fold is also kept in the repository, as a small record under
``benchmarks/results/finetune/CORPUS/BACKBONE-MODE/SPEAKER-seedS.json`` (its UA, WA, the
per-utterance predictions, wall time, peak memory, and where it ran: the commit, the date, the
CPU count), and a later run, on this machine or a fresh one whose bench folder is empty, takes
the fold from there instead of training it again (``--rerun`` trains it anew). So a table that
takes longer than one sitting is filled in over several, and each figure says where it came from.
Commit the new records with the code that made them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import ROOT, features, features_name, manifest  # noqa: E402

MODES = ("frozen", "lora", "top")
RESULTS = Path(__file__).resolve().parent / "results" / "finetune"


def timed(args: list) -> dict:
    """Run ``sercli ARGS``; its wall time and peak RSS (this child's own, from wait4)."""
    cmd = [sys.executable, "-m", "sercli", "-q", *map(str, args)]
    print("$ sercli " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"sercli {' '.join(map(str, args[:3]))} ... failed (exit {proc.returncode})")
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": usage.ru_maxrss / 1024}


def record_path(corpus: str, backbone: str, mode: str, speaker: str, seed: int) -> Path:
    return RESULTS / corpus / f"{backbone}-{mode}" / f"{speaker}-seed{seed}.json"


def settings(mode: str, args) -> dict:
    """What changes a fold's numbers besides the corpus, backbone, mode, speaker and seed."""
    kept = {"top_layers": args.top_layers} if mode == "top" else {}
    if args.epochs and mode != "frozen":
        kept["epochs"] = args.epochs
    return kept


def provenance() -> dict:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sercli", "plugins"],
                           capture_output=True, text=True)
    return {"commit": commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else ""),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"}


def fold_run(bench: Path, corpus: str, backbone: str, mode: str, speaker: str, seed: int, args) -> dict:
    """One fold's figures: from its kept record when one exists with these settings, else trained
    (or read from the bench folder's finished run) and then kept."""
    kept = record_path(corpus, backbone, mode, speaker, seed)
    if kept.exists() and not args.rerun:
        job = json.loads(kept.read_text())
        if job.get("settings") == settings(mode, args):
            return job
    out = bench / corpus / "finetune" / f"{backbone}-{mode}" / f"{speaker}-seed{seed}"
    stamp = out.parent / f"{out.name}.timing.json"
    if not (out / "metrics.json").exists() or not stamp.exists() or args.rerun:
        common = ["--test-speakers", speaker, "--seed", seed, "--out", out, "--overwrite"]
        if mode == "frozen":
            cmd = ["train", features(bench, corpus, features_name(backbone)), *common]
        else:
            cmd = ["train", manifest(bench, corpus), "--finetune", backbone, "--finetune-mode", mode, *common]
            if mode == "top":
                cmd += ["--finetune-layers", args.top_layers]
            cmd += ["--epochs", args.epochs] if args.epochs else []
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({**timed(cmd), **provenance()}))
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    history = json.loads((out / "history.json").read_text())
    predictions = [{k: p[k] for k in ("id", "emotion", "predicted") if k in p}
                   for p in map(json.loads, open(out / "predictions.jsonl"))]
    # a one-job run's metrics.json holds each figure as a summary over its one job
    value = lambda m: m["mean"] if isinstance(m, dict) else m  # noqa: E731
    job = {"speaker": speaker, "seed": seed, "settings": settings(mode, args), "UA": value(metrics["UA"]),
           "WA": value(metrics["WA"]), "train": config["counts"]["train"], "epochs": len(history),
           **json.loads(stamp.read_text()), "predictions": predictions}
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(job, indent=0) + "\n")
    return job


def row(backbone: str, mode: str, jobs: list[dict], labels: list[str]) -> dict:
    from sercli.core.metrics import compute_metrics
    from sercli.evaluation.evaluate import summary

    y = [p["emotion"] for j in jobs for p in j["predictions"]]
    p = [p["predicted"] for j in jobs for p in j["predictions"]]
    index = {lab: i for i, lab in enumerate(labels)}
    pooled = compute_metrics([index[v] for v in y], [index[v] for v in p], labels)
    seconds = sum(j["seconds"] for j in jobs)
    samples = sum(j["train"] * j["epochs"] for j in jobs)
    return {"backbone": backbone, "mode": mode, "UA": summary([j["UA"] for j in jobs]), "pooled_UA": pooled["UA"],
            "seconds": seconds, "seconds_per_fold": seconds / len(jobs),
            "peak_rss_mb": max(j["peak_rss_mb"] for j in jobs), "samples_per_s": samples / seconds,
            "jobs": [{k: v for k, v in j.items() if k != "predictions"} for j in jobs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--backbones", default="whisper-tiny.en,whisper-base")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--folds", default="", help="test speakers to run now (default: every speaker)")
    ap.add_argument("--top-layers", type=int, default=2, help="layers that learn in the top mode")
    ap.add_argument("--epochs", type=int, default=0, help="cap the fine-tuning epochs (default: train's own)")
    ap.add_argument("--rerun", action="store_true", help="train every fold again, not from benchmarks/results")
    args = ap.parse_args()

    from sercli.core.records import read_records

    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench")).resolve()
    records = read_records(manifest(bench, args.corpus))
    labels = sorted({r["emotion"] for r in records})
    speakers = sorted({r["speaker"] for r in records})
    folds = [s for s in args.folds.split(",") if s] or speakers
    unknown = sorted(set(folds) - set(speakers))
    if unknown:
        sys.exit(f"--folds: no speaker {', '.join(unknown)} in {args.corpus} (speakers: {', '.join(speakers)})")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, extraction = [], {}
    for backbone in [b for b in args.backbones.split(",") if b]:
        for mode in [m for m in args.modes.split(",") if m]:
            if mode not in MODES:
                sys.exit(f"--modes: unknown {mode!r} (known: {', '.join(MODES)})")
            if mode == "frozen":
                cached = (bench / args.corpus / f"{features_name(backbone)}.jsonl").exists()
                t = time.perf_counter()
                features(bench, args.corpus, features_name(backbone))
                extraction[backbone] = None if cached else time.perf_counter() - t
            jobs = [fold_run(bench, args.corpus, backbone, mode, s, seed, args) for s in folds for seed in seeds]
            rows.append(row(backbone, mode, jobs, labels))
            r = rows[-1]
            print(f"{backbone} {mode}: UA {r['UA']['mean']:.3f} over {len(jobs)} jobs", file=sys.stderr, flush=True)

    part = "" if set(folds) == set(speakers) else f" (a part: test speakers {', '.join(folds)})"
    print(f"## {args.corpus}: leave one speaker out{part}, seeds {args.seeds}\n")
    print("| backbone | mode | UA mean [95% CI] | pooled UA | wall time (per fold) | peak RSS | samples/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ua = r["UA"]
        print(f"| {r['backbone']} | {r['mode']} | {ua['mean']:.3f} [{ua['ci95'][0]:.3f}, {ua['ci95'][1]:.3f}] | "
              f"{r['pooled_UA']:.3f} | {r['seconds'] / 60:.1f} min ({r['seconds_per_fold']:.0f} s) | "
              f"{r['peak_rss_mb']:.0f} MB | {r['samples_per_s']:.1f} |")
    for r in rows:  # where each row's folds were trained (benchmarks/results keeps them across machines)
        where = sorted({f"{j.get('commit', '?')} on {j.get('date', '?')} ({j.get('machine', '?')})" for j in r["jobs"]})
        print(f"\n{r['backbone']} {r['mode']}: folds trained at " + "; ".join(where))
    for backbone, seconds in extraction.items():
        said = "cached before this run" if seconds is None else f"{seconds:.0f} s"
        print(f"\nfrozen {backbone}: feature extraction (once, every utterance) {said}, not in the wall time above")
    path = bench / args.corpus / "finetune.json"
    path.write_text(json.dumps({"rows": rows, "extraction_s": extraction, "folds": folds, "args": vars(args)}, indent=1))
    print(f"\n(numbers: {path})")


if __name__ == "__main__":
    main()
