"""How fast `sercli extract` turns audio into SSL features, against a naive loop; and its
peak memory on a long recording.

    python benchmarks/extract_speed.py                  # CPU: base-size wav2vec2, 24 clips of 1-15 s
    python benchmarks/extract_speed.py --device cuda    # on a GPU box

Both sides get the same generated utterances (16 kHz, 1-15 s) and the same base-size model
(wav2vec2-base's shape, 95M parameters, random weights saved locally: no hub needed), and
each runs in a fresh process, timed from start to exit (imports and weight loading
included, as a user waits for them), with the CPU time its processes used (which depends
far less than wall time on what else a shared machine runs):
  (a) naive: one file at a time, transformers' feature extractor then the model, float32,
      under torch.no_grad(), torch's default threads; mean over frames of every layer;
  (b) sercli: `sercli extract --layers all --pool mean --store-dtype float32`.
It prints audio-seconds per wall-second of each and their ratio, checks that both give the
same features, then runs sercli on one 10-minute and one 10-second recording and prints the
peak memory of its whole process tree (main process and workers, sampled from /proc: the sum
of RSS, which counts shared pages once per process, and of PSS, which does not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

NAIVE = r"""
import json, sys, time
import numpy as np, soundfile as sf, torch
from transformers import AutoFeatureExtractor, AutoModel

model_dir, manifest, out, device = sys.argv[1:5]
fe = AutoFeatureExtractor.from_pretrained(model_dir)
model = AutoModel.from_pretrained(model_dir).eval().to(device)
feats = {}
for line in open(manifest):
    rec = json.loads(line)
    wav, sr = sf.read(rec["audio"], dtype="float32")
    inputs = fe(wav, sampling_rate=sr, return_tensors="pt").to(device)
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    feats[rec["id"]] = torch.stack(hidden)[:, 0].mean(1).cpu().numpy()
np.savez(out, **feats)
"""


def make_clips(folder: Path, n: int, seed: int) -> tuple[Path, float]:
    """``n`` noisy harmonic tones of 1-15 s; returns their manifest and total seconds."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines, total = [], 0.0
    for i in range(n):
        secs = float(rng.uniform(1.0, 15.0))
        t = np.arange(int(secs * 16000)) / 16000
        f0 = rng.uniform(100, 300)
        wav = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 4)) + 0.02 * rng.standard_normal(t.size)
        path = folder / f"u{i:03d}.wav"
        sf.write(str(path), wav.astype(np.float32), 16000)
        lines.append(json.dumps({"id": path.stem, "audio": str(path)}))
        total += t.size / 16000
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, total


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the fork server's workers are its grandchildren)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes of ``pid``. RSS counts a page shared by several processes (torch's
    libraries, the mmapped weights) once per process; PSS splits it between them, so the
    sum of PSS over a tree is the memory it really holds."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss += int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def timed(cmd: list[str], env: dict | None = None, watch_memory: bool = False) -> tuple[float, float, tuple[int, int]]:
    """Run ``cmd``; (wall seconds until it exits, CPU seconds of its whole process tree,
    peak (RSS, PSS) bytes of the tree if watched). The tree is sampled from /proc every
    50 ms (the fork server's workers are not children that rusage would count), so a
    process's CPU time after its last sample is missed. CPU time depends far less than
    wall time on what else a shared machine runs."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SERCLI_QUIET": "1", **(env or {})})
    peak, cpu = (0, 0), {}
    while proc.poll() is None:
        tree = process_tree(proc.pid)
        for pid in tree:
            cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds(pid))
        if watch_memory:
            usage = [memory(pid) for pid in tree]
            peak = tuple(max(a, sum(u[i] for u in usage)) for i, a in enumerate(peak))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr.read()}")
    return wall, sum(cpu.values()), peak


def same_features(naive_out: Path, store: Path) -> str:
    """Whether sercli stored what the naive loop computed (up to float rounding)."""
    sys.path.insert(0, str(ROOT))
    from sercli.features.store import FeatureStore
    from sercli.core.fingerprint import split_key

    naive = np.load(naive_out)
    fs = FeatureStore(store)
    by_id = {split_key(key)[0]: key for key in fs.index()}  # store keys are id#audio-sha
    worst = max(float(np.abs(fs.get(by_id[k])[:, 0] - naive[k]).max() / (np.abs(naive[k]).max() + 1e-12)) for k in naive.files)
    same = len(fs.index()) == len(naive.files) and worst < 1e-4
    return f"{same} (largest difference {worst:.1e} of the largest value, {len(naive.files)} clips)"


def sercli_cmd(manifest: Path, model: Path, store: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "sercli", "extract", str(manifest), "--backbone", f"hf:{model}",
           "--store", str(store), "--layers", "all", "--pool", "mean", "--store-dtype", "float32",
           "--device", args.device, "-o", str(store) + ".jsonl"]
    if args.batch_seconds:
        cmd += ["--batch-seconds", str(args.batch_seconds)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    return cmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clips", type=int, default=24, help="utterances of 1-15 s")
    ap.add_argument("--arch", default="wav2vec2-group", help="wav2vec2-group (wav2vec2-base's config) or wav2vec2-layer, ...")
    ap.add_argument("--batch-seconds", type=float, default=None, help="sercli's --batch-seconds (default: its own)")
    ap.add_argument("--workers", type=int, default=None, help="sercli's --workers (default: its own)")
    ap.add_argument("--naive-threads", type=int, default=None,
                    help="torch threads of the naive loop (default: torch's own choice, as a user gets it)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    ap.add_argument("--rounds", type=int, default=1, help="alternating naive/sercli rounds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (model, clips, stores)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "plugins"))
    from sercli_hf.random_models import save_random_model

    work = Path(tempfile.mkdtemp(prefix="sercli-extract-speed-"))
    model = save_random_model(args.arch, work / "model", size="base", seed=args.seed)
    print(f"model: random {args.arch}, base size; device {args.device}; load average {os.getloadavg()}")

    if not args.skip_speed:
        manifest, total = make_clips(work / "clips", args.clips, args.seed)
        print(f"{args.clips} clips, {total:.1f} s of audio")
        env = {"OMP_NUM_THREADS": str(args.naive_threads)} if args.naive_threads else None
        threads = args.naive_threads or "default"
        ratios = []
        # Rounds alternate the two, so a neighbour's load on a shared machine hits both alike.
        for r in range(args.rounds):
            naive_out, store = work / f"naive{r}.npz", work / f"store{r}"
            t_naive, cpu_naive, _ = timed([sys.executable, "-c", NAIVE, str(model), str(manifest), str(naive_out), args.device], env)
            t_sercli, cpu_sercli, _ = timed(sercli_cmd(manifest, model, store, args))
            ratios.append(t_naive / t_sercli)
            print(f"round {r + 1}, load average {os.getloadavg()[0]:.2f}:")
            print(f"  (a) naive loop : {total / t_naive:7.2f} audio-s per s  ({t_naive:.1f} s wall, "
                  f"{cpu_naive / total:.3f} CPU-s per audio-s; {threads} torch threads)")
            print(f"  (b) sercli     : {total / t_sercli:7.2f} audio-s per s  ({t_sercli:.1f} s wall, "
                  f"{cpu_sercli / total:.3f} CPU-s per audio-s)")
            print(f"  ratio b/a      : {ratios[-1]:7.2f}x")
            print(f"  outputs equal  : {same_features(naive_out, store)}")
        print(f"median ratio b/a : {float(np.median(ratios)):.2f}x over {len(ratios)} round(s)")

    if not args.skip_memory:
        import soundfile as sf

        rng = np.random.default_rng(args.seed)
        peaks = {}
        for name, secs in (("10 s", 10.0), (f"{args.minutes:g} min", args.minutes * 60)):
            folder = work / f"mem-{int(secs)}"
            folder.mkdir()
            path = folder / "rec.wav"
            sf.write(str(path), (0.1 * rng.standard_normal(int(secs * 16000))).astype(np.float32), 16000)
            manifest = folder / "manifest.jsonl"
            manifest.write_text(json.dumps({"id": "rec", "audio": str(path)}) + "\n")
            wall, _, peaks[name] = timed(sercli_cmd(manifest, model, folder / "store", args), watch_memory=True)
            rss, pss = (b / 2**20 for b in peaks[name])
            print(f"peak memory, {name:>7} recording: RSS {rss:6.0f} MiB, PSS {pss:6.0f} MiB ({wall:.1f} s wall)")
        (rss_s, pss_s), (rss_l, pss_l) = peaks.values()
        print(f"long / short   : RSS {rss_l / rss_s:.2f}x, PSS {pss_l / pss_s:.2f}x")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
