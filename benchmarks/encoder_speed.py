"""How fast each offline encoder extracts a real corpus: real-time factors of `sercli extract`.

    python benchmarks/encoder_speed.py emodb                          # whisper-tiny.en and whisper-base
    python benchmarks/encoder_speed.py emodb --backbones whisper-base --clips 100 --repeats 3

For one shared corpus (../shared/data, or $SERCLI_SHARED_DATA), the first ``--clips`` utterances
(0: all), extracted as the recipes do (``--layers all --pool mean+std``) into a fresh store, each
repeat in a fresh process timed from start to exit (imports and weight loading included, as a
user waits for them). Per backbone: audio seconds, wall time, the CPU time of the process and
its children, and two real-time factors: audio / wall (what this machine gave now) and audio /
(CPU time / cores) (what the same work gives on a quiet machine with that many cores; on a
shared machine wall time depends on what else runs, CPU time much less). Markdown to stdout,
numbers to $SERCLI_BENCH_DIR/CORPUS/encoder_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import ROOT, manifest  # noqa: E402
from extract_speed import timed  # noqa: E402


def one(records: Path, backbone: str) -> dict:
    """One extraction in a fresh process: wall time, and the CPU time and peak memory of its
    whole process tree (sampled from /proc: the fork server's workers are grandchildren that
    rusage would not count)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "sercli", "-q", "extract", str(records), "--backbone", backbone,
               "--layers", "all", "--pool", "mean+std", "--store", f"{tmp}/store", "-o", f"{tmp}/f.jsonl"]
        wall, cpu, (rss, pss) = timed(cmd, watch_memory=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss / 2**20, "peak_pss_mb": pss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--backbones", default="whisper-tiny.en,whisper-base")
    ap.add_argument("--clips", type=int, default=100, help="utterances to extract (0: every one)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores the quiet-machine figure assumes")
    args = ap.parse_args()

    import soundfile as sf

    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench")).resolve()
    lines = open(manifest(bench, args.corpus)).readlines()
    lines = lines[: args.clips] if args.clips else lines
    audio = sum(sf.info(json.loads(line)["audio"]).duration for line in lines)
    subset = bench / args.corpus / f"speed-{len(lines)}.jsonl"
    subset.write_text("".join(lines))
    rows = []
    for backbone in [b for b in args.backbones.split(",") if b]:
        one(subset, backbone)  # warm the page cache and any one-time conversion
        runs = [one(subset, backbone) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["wall_s"])
        cpu = min(r["cpu_s"] for r in runs)
        rows.append({"backbone": backbone, "audio_s": audio, "runs": runs, "rt_wall": audio / best["wall_s"],
                     "rt_cpu": audio / (cpu / args.cores), "peak_pss_mb": max(r["peak_pss_mb"] for r in runs)})
    load = os.getloadavg()[0]
    print(f"## {args.corpus}: `sercli extract --layers all --pool mean+std`, {len(lines)} clips, {audio:.0f} s of "
          f"audio, best of {args.repeats} (load average {load:.1f} on {os.cpu_count()} cores)\n")
    print(f"| backbone | wall | CPU time | x real time (wall) | x real time (CPU / {args.cores} cores) | peak memory (PSS) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        w = min(x["wall_s"] for x in r["runs"])
        c = min(x["cpu_s"] for x in r["runs"])
        print(f"| {r['backbone']} | {w:.1f} s | {c:.1f} s | {r['rt_wall']:.1f} | {r['rt_cpu']:.1f} | "
              f"{r['peak_pss_mb']:.0f} MB |")
    path = bench / args.corpus / "encoder_speed.json"
    path.write_text(json.dumps({"rows": rows, "load": load, "args": vars(args)}, indent=1))
    print(f"\n(numbers: {path})")


if __name__ == "__main__":
    main()
