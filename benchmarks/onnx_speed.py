"""CPU speed of an exported run on onnxruntime against the same run on PyTorch (not a test).

    python3 benchmarks/onnx_speed.py [--run RUN] [--threads 1,2] [--rounds 3]

Without --run it trains one first, in $SERCLI_BENCH_DIR/onnx (default work/bench/onnx): EmoDB
(../shared/data/emodb, or $SERCLI_SHARED_DATA) speakers 03, 08, 09, 10 on whisper-tiny.en
features (all layers, mean+std, --norm none), and exports it with `sercli export onnx`. The clips
are 20 EmoDB clips of speaker 11. Each path classifies one clip at a time, as a deployed model
does: PyTorch is `sercli predict RUN`'s own path (the backbone as sercli loads it, with its CPU
rewrites, then the head); onnxruntime runs encoder.onnx and head.onnx. Both with the same number
of threads; one warm-up clip, then the median of --rounds passes over the 20 clips. Prints
clips per second and the real-time factor (seconds of compute per second of audio).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("03", "08", "09", "10", "11")


def sercli(*args) -> None:
    subprocess.run([sys.executable, "-m", "sercli", "-q", *map(str, args)], check=True)


def build(work: Path) -> tuple[Path, Path, list[str]]:
    data = Path(os.environ.get("SERCLI_SHARED_DATA", ROOT.parent / "shared" / "data")) / "emodb"
    work.mkdir(parents=True, exist_ok=True)
    run, deploy = work / "run", work / "deploy"
    manifest = work / "emodb.jsonl"
    if not manifest.exists():
        sercli("prepare", "emodb", data / "audio", "-o", manifest)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    clips = emodb_clips(work)
    if not run.exists():
        sub = work / "sub.jsonl"
        sub.write_text("".join(json.dumps(r) + "\n" for r in records if r["speaker"] in SPEAKERS))
        sercli("extract", sub, "-b", "whisper-tiny.en", "--layers", "all", "--pool", "mean+std",
               "-s", work / "store", "-o", work / "feats.jsonl")
        sercli("train", work / "feats.jsonl", "--test-speakers", "11", "--norm", "none", "--out", run)
    if not deploy.exists():
        sercli("export", "onnx", run, "-o", deploy)
    return run, deploy, clips


def emodb_clips(work: Path) -> list[str]:
    data = Path(os.environ.get("SERCLI_SHARED_DATA", ROOT.parent / "shared" / "data")) / "emodb"
    manifest = work / "emodb.jsonl"
    if not manifest.exists():
        work.mkdir(parents=True, exist_ok=True)
        sercli("prepare", "emodb", data / "audio", "-o", manifest)
    return [json.loads(line)["audio"] for line in manifest.read_text().splitlines() if '"speaker": "11"' in line][:20]


def timed(fn, wavs, rounds: int) -> float:
    fn(wavs[0])  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for w in wavs:
            fn(w)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run on any backbone (default: the EmoDB whisper run above)")
    parser.add_argument("--deploy", type=Path, help="its export (default: exported into the work folder)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(os.environ.get("SERCLI_BENCH_DIR", "work/bench")) / "onnx"
    run, deploy, clips = build(work) if not args.run else (args.run, args.deploy or work / f"deploy-{args.run.name}",
                                                          emodb_clips(work))
    if not deploy.exists():
        sercli("export", "onnx", run, "-o", deploy)

    import onnxruntime as ort
    import torch

    from sercli.core.audio import load_audio
    from sercli.evaluation.evaluate import Arrays
    from sercli.features.compute import extract_waveform
    from sercli.features.config import config_for
    from sercli.learning.model import probabilities
    from sercli.runs.deployable import backbone_of, load_run

    loaded = load_run(run)
    manifest = json.loads((deploy / "manifest.json").read_text())
    sr = int(manifest["sample_rate"])
    wavs = [load_audio(c, sr) for c in clips]
    audio_seconds = sum(len(w) for w in wavs) / sr
    backbone = backbone_of(loaded.meta)
    backbone.load("cpu")
    cfg = config_for(loaded.meta)
    models = [m for m, _ in loaded.models]
    L, D = manifest["features"]["layers"], manifest["features"]["dim"]
    zeros, ones = np.zeros((L, D), np.float32), np.ones((L, D), np.float32)

    def pytorch(w):
        x = extract_waveform(backbone, w, cfg).astype(np.float32)
        return np.mean([probabilities(m, Arrays([x]), 1) for m in models], axis=0)

    print(f"{len(wavs)} clips, {audio_seconds:.1f} s of audio, backbone {loaded.meta['backbone']['plugin']}, "
          f"{len(models)} head(s); median of {args.rounds} passes")
    print("| threads | runtime | clips/s | real-time factor |")
    print("|---|---|---|---|")
    for n in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(n)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = n, 1
        encoder = ort.InferenceSession(str(deploy / manifest["files"]["encoder"]), options, providers=["CPUExecutionProvider"])
        head = ort.InferenceSession(str(deploy / manifest["files"]["head"]), options, providers=["CPUExecutionProvider"])

        def onnx(w):
            x = encoder.run(None, {"waveform": w[None]})[0]
            return head.run(None, {"features": x[None], "mean": zeros, "std": ones})[0]

        for name, fn in (("PyTorch (sercli predict RUN's path)", pytorch), ("onnxruntime (exported)", onnx)):
            seconds = timed(fn, wavs, args.rounds)
            print(f"| {n} | {name} | {len(wavs) / seconds:.1f} | {seconds / audio_seconds:.4f} |", flush=True)


if __name__ == "__main__":
    main()
