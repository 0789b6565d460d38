"""Cross-validation in parallel: `sercli train --cv loso --jobs 1` against `--jobs 2` on EmoDB.

    python benchmarks/parallel_cv.py [--seeds 0] [--jobs 2] [--backbone whisper-tiny.en|fbank]

Prepares EmoDB (../shared/data/emodb, or $SERCLI_SHARED_DATA/emodb) and extracts its features
(`-b whisper-tiny.en --layers all --pool mean+std`; fbank frames with --backbone fbank), both
cached under $SERCLI_BENCH_DIR/parallel_cv (default: work/bench/parallel_cv, which git ignores);
then trains leave-one-speaker-out serially and with --jobs N and prints both wall times, their
ratio, and whether the two runs' metrics.json are identical (they must be: each job seeds itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRACT = {
    "whisper-tiny.en": ["--layers", "all", "--pool", "mean+std"],
    "fbank": ["--pool", "none", "--store-dtype", "float16"],
}


def sercli(*args, quiet: bool = True) -> None:
    print("$ sercli " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "sercli", *(["-q"] if quiet else []), *map(str, args)],
                   check=True, stdout=subprocess.DEVNULL)


def features(work: Path, backbone: str) -> Path:
    data = Path(os.environ.get("SERCLI_SHARED_DATA", ROOT.parent / "shared" / "data")) / "emodb"
    if not data.is_dir():
        sys.exit(f"no EmoDB at {data} (set SERCLI_SHARED_DATA)")
    work.mkdir(parents=True, exist_ok=True)
    manifest, out = work / "manifest.jsonl", work / f"{backbone}.jsonl"
    if not manifest.exists():
        sercli("prepare", "emodb", data, "-o", manifest)
    if not out.exists():
        sercli("extract", manifest, "-b", backbone, *EXTRACT[backbone], "--store", work / f"{backbone}-store", "-o", out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--backbone", default="whisper-tiny.en", choices=sorted(EXTRACT))
    args = ap.parse_args()
    work = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench")) / "parallel_cv"
    feats = features(work, args.backbone)
    walls, metrics = {}, {}
    for jobs in (1, args.jobs):
        out = work / f"run-jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        sercli("train", feats, "--cv", "loso", "--seeds", args.seeds, "--jobs", jobs, "--out", out)
        walls[jobs] = time.perf_counter() - start
        metrics[jobs] = json.loads((out / "metrics.json").read_text())
    serial, parallel = metrics[1], metrics[args.jobs]
    same = serial == parallel
    print(f"EmoDB LOSO, {args.backbone}, seeds {args.seeds}: {serial['n_jobs']} jobs on {os.cpu_count()} CPUs")
    print(f"--jobs 1: {walls[1]:.1f} s   --jobs {args.jobs}: {walls[args.jobs]:.1f} s   "
          f"ratio (1 / {args.jobs}): {walls[1] / walls[args.jobs]:.2f}x")
    print(f"pooled UA {serial['pooled']['UA']:.4f} / {parallel['pooled']['UA']:.4f}, "
          f"UA mean {serial['UA']['mean']:.4f} / {parallel['UA']['mean']:.4f}; metrics identical: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
