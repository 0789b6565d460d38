"""Extraction throughput with 1 and 2 workers: local processes, a local Ray cluster, and GPUs.

    python benchmarks/cluster_throughput.py                       # EmoDB, whisper-tiny.en and fbank
    python benchmarks/cluster_throughput.py --limit 200 --repeats 2 --backbones fbank --modes local,ray

Prepares a shared corpus (../shared/data/CORPUS, or $SERCLI_SHARED_DATA/CORPUS; the manifest is
cached under $SERCLI_BENCH_DIR/cluster_throughput, default work/bench, which git ignores), then
extracts it into a fresh feature store for every row, timing the whole command:

* ``local``: ``sercli extract --workers W`` (W processes, each with its own copy of the model);
* ``ray``: ``sercli extract --cluster ray --workers W`` (a local Ray cluster started by the
  command, W actors, each loading the model once);
* ``devices``: ``--device cuda`` (one GPU) and ``--devices all`` (one replica per GPU), only
  where CUDA is (otherwise a line on stderr says they were skipped).

Each row: wall time of the command (process start, model load and, for Ray, starting the
cluster included: what a user waits for; with --repeats N the best of N passes, the passes
interleaved so that other work on the machine slows every row alike; after one untimed run per
backbone, which brings its files into the page cache), records/s, audio hours per second, and
the speedup over the same mode's first row. A markdown table to stdout; the numbers also to
$SERCLI_BENCH_DIR/cluster_throughput/CORPUS.json. On a shared machine the times are upper
bounds (other work slows every row).
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
EXTRACT = {  # backbone -> extract options (as benchmarks/accuracy.py extracts them)
    "whisper-tiny.en": ["--layers", "all", "--pool", "mean+std"],
    "fbank": ["--pool", "mean"],
}


def sercli(*args) -> None:
    print("$ sercli " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "sercli", "-q", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def manifest(work: Path, corpus: str, limit: int | None) -> Path:
    """The corpus's records (the first ``limit`` by id with --limit), prepared once."""
    data = Path(os.environ.get("SERCLI_SHARED_DATA", ROOT.parent / "shared" / "data")) / corpus
    if not data.is_dir():
        sys.exit(f"no {corpus} at {data} (set SERCLI_SHARED_DATA)")
    work.mkdir(parents=True, exist_ok=True)
    full = work / "manifest.jsonl"
    if not full.exists():
        sercli("prepare", corpus, data / "audio" if (data / "audio").is_dir() else data, "-o", full)
    if limit is None:
        return full
    lines = sorted(full.read_text().splitlines(), key=lambda line: json.loads(line)["id"])[:limit]
    subset = work / f"manifest-{limit}.jsonl"
    subset.write_text("\n".join(lines) + "\n")
    return subset


def audio_hours(path: Path) -> tuple[int, float]:
    import soundfile as sf

    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return len(records), sum(sf.info(r["audio"]).duration for r in records) / 3600


def rows_to_run(modes: list[str], workers: list[int]) -> list[tuple[str, str, list[str]]]:
    """(mode, setting, extra extract options) of every row."""
    rows = []
    for mode in modes:
        if mode == "local":
            rows += [(mode, f"--workers {w}", ["--workers", str(w)]) for w in workers]
        elif mode == "ray":
            rows += [(mode, f"--cluster ray --workers {w}", ["--cluster", "ray", "--workers", str(w)]) for w in workers]
        elif mode == "devices":
            import torch

            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n == 0:
                print("devices: no CUDA device here; the --device cuda and --devices all rows are skipped",
                      file=sys.stderr)
                continue
            rows += [(mode, "--device cuda", ["--device", "cuda"]),
                     (mode, f"--devices all ({n} GPUs)", ["--devices", "all"])]
        else:
            sys.exit(f"--modes: unknown mode {mode!r} (local, ray, devices)")
    return rows


def extract(records: Path, backbone: str, extra: list[str], work: Path, n: int) -> float:
    """Seconds `sercli extract` takes over ``records`` into a fresh store (checked: every record out)."""
    store, out = work / "store", work / "features.jsonl"
    shutil.rmtree(store, ignore_errors=True)  # a fresh store each time: nothing is skipped
    start = time.perf_counter()
    sercli("extract", records, "-b", backbone, *EXTRACT[backbone], *extra, "--store", store, "-o", out)
    wall = time.perf_counter() - start
    got = sum(1 for line in out.read_text().splitlines() if line.strip())
    if got != n:
        sys.exit(f"{backbone} {' '.join(extra)}: {got} records out of {n}")
    shutil.rmtree(store, ignore_errors=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="emodb")
    ap.add_argument("--backbones", default="whisper-tiny.en,fbank")
    ap.add_argument("--modes", default="local,ray,devices", help="local, ray, devices (comma-separated)")
    ap.add_argument("--workers", default="1,2", help="worker counts for the local and ray rows")
    ap.add_argument("--limit", type=int, default=None, help="only the first N records (by id)")
    ap.add_argument("--repeats", type=int, default=1, help="passes over every row; the best is kept")
    args = ap.parse_args()
    work = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench")) / "cluster_throughput" / args.corpus
    records = manifest(work, args.corpus, args.limit)
    n, hours = audio_hours(records)
    workers = [int(w) for w in args.workers.split(",")]
    rows = rows_to_run(args.modes.split(","), workers)
    for backbone in args.backbones.split(","):  # untimed: model files and libraries into the page cache
        extract(records, backbone, [], work, n)
    load = os.getloadavg()[0]
    walls: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for backbone in args.backbones.split(","):
            for mode, setting, extra in rows:
                walls.setdefault((backbone, setting), []).append(extract(records, backbone, extra, work, n))
    results, first = [], {}
    for backbone in args.backbones.split(","):
        for mode, setting, _ in rows:
            wall = min(walls[backbone, setting])
            first.setdefault((backbone, mode), wall)
            results.append({"backbone": backbone, "mode": mode, "setting": setting, "wall_s": round(wall, 2),
                            "walls_s": [round(w, 2) for w in walls[backbone, setting]],
                            "records_per_s": round(n / wall, 2), "audio_h_per_s": round(hours / wall, 5),
                            "speedup": round(first[backbone, mode] / wall, 2)})
    load = f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    (work / f"{args.corpus}.json").write_text(json.dumps(
        {"corpus": args.corpus, "records": n, "audio_hours": round(hours, 4), "cpus": os.cpu_count(), "load": load,
         "repeats": args.repeats, "rows": results},
        indent=1))
    print(f"{args.corpus}: {n} records, {hours:.3f} h of audio, {os.cpu_count()} CPUs ({load}); wall time of "
          f"the whole command (start, model load and, for Ray, the cluster's start included), best of {args.repeats}\n")
    print("| backbone | mode | setting | wall (s) | records/s | audio h/s | speedup |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['backbone']} | {r['mode']} | {r['setting']} | {r['wall_s']:.1f} | {r['records_per_s']:.1f} | "
              f"{r['audio_h_per_s']:.4f} | {r['speedup']:.2f}x |")


if __name__ == "__main__":
    main()
