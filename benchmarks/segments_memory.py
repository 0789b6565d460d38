"""Peak memory of `sercli predict RUN LONG.wav --segments` on a one-hour recording against a
one-minute one: flat in the recording's length.

    python benchmarks/segments_memory.py                 # the default detector (silero if installed)
    python benchmarks/segments_memory.py --vad energy --minutes 60

It trains a small fbank run on espeak-ng clips (three voices, three emotions), then writes two
16 kHz recordings, block by block, of the same pattern: clips of another voice, each after 1.5 s
of quiet noise (about -50 dBFS), repeated to one minute and to ``--minutes`` minutes. Each
`predict --segments` runs in a fresh process; its peak resident memory (ru_maxrss of that one
child) and wall time are printed, with the number of segments it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
EMOTIONS = ("angry", "happy", "sad")
TEXTS = ("I told you to close the door.", "The train leaves at nine tonight.", "We painted the fence green.")
CLIPS = [("angry", "Give me the keys right now."), ("sad", "Nobody came to the party at all."),
         ("happy", "What a lovely sunny morning it is.")]

PEAK = r"""
import resource, subprocess, sys, time
t = time.time()
with open(sys.argv[1], "w") as out:
    code = subprocess.run(sys.argv[2:], stdout=out).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time() - t, code)
"""


def sercli(*args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "sercli", *map(str, args)], check=True, env=env, **kw)


def make_run(root: Path) -> Path:
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from sercli_espeak.engine import EspeakEngine

    tts = EspeakEngine()
    records = []
    for voice in ("en-us", "en-us+f3", "en-gb-x-rp+f1"):
        for emotion in EMOTIONS:
            for k, text in enumerate(TEXTS):
                path = root / "train" / f"{voice}-{emotion}-{k}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                tts.synthesize(text, emotion, voice, path)
                records.append({"id": path.stem, "audio": str(path), "emotion": emotion, "speaker": voice})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    sercli("extract", root / "train.jsonl", "--backbone", "fbank", "-O", "n_mels=24", "--pool", "none",
           "--workers", "0", "--store", root / "store", "-o", root / "feats.jsonl", "-q")
    sercli("train", root / "feats.jsonl", "--out", root / "run", "--val-speakers", "en-gb-x-rp+f1",
           "--epochs", "25", "--patience", "25", "--lr", "0.03", "-q")
    for i, (emotion, text) in enumerate(CLIPS):
        tts.synthesize(text, emotion, "en-us+m3", root / f"clip{i}.wav")
    return root / "run"


def write_recording(root: Path, path: Path, seconds: float) -> None:
    """Quiet noise and the clips in turn, written a piece at a time (never the whole file in memory)."""
    import soundfile as sf

    clips = [sf.read(str(root / f"clip{i}.wav"), dtype="float32")[0] for i in range(len(CLIPS))]
    rng = np.random.default_rng(0)
    total, k = int(seconds * SR), 0
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as f:
        written = 0
        while written < total:
            piece = np.concatenate([(0.003 * rng.standard_normal(int(1.5 * SR))).astype(np.float32), clips[k % len(clips)]])
            piece = piece[: total - written]
            f.write(piece)
            written += len(piece)
            k += 1


def peak(run: Path, wav: Path, out: Path, vad: str | None) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, segments written) of one `predict --segments`."""
    env_path = os.pathsep.join([str(ROOT), str(ROOT / "plugins")])
    cmd = ["env", f"PYTHONPATH={env_path}", sys.executable, "-m", "sercli", "-q", "predict", str(run), str(wav),
           "--segments", *(["--vad", vad] if vad else [])]
    proc = subprocess.run([sys.executable, "-c", PEAK, str(out), *cmd], capture_output=True, text=True, check=True)
    kib, wall, code = proc.stdout.split()
    if code != "0":
        raise SystemExit(f"predict --segments failed on {wav} (exit {code})")
    return int(kib) / 1024, float(wall), sum(1 for _ in open(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the long recording")
    parser.add_argument("--vad", default=None, help="voice-activity detector (default: sercli's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sercli-segments-bench-") as tmp:
        root = Path(tmp)
        run = make_run(root)
        rows = []
        for name, minutes in (("1 minute", 1.0), (f"{args.minutes:g} minutes", args.minutes)):
            wav = root / f"{minutes:g}min.wav"
            write_recording(root, wav, minutes * 60)
            mib, wall, n = peak(run, wav, root / f"{minutes:g}min.jsonl", args.vad)
            rows.append(mib)
            print(f"{name:>11} recording ({wav.stat().st_size / 2**20:6.1f} MiB of PCM): peak RSS {mib:6.0f} MiB, "
                  f"{n:5d} segments, {wall:6.1f} s wall", flush=True)
        print(f"long / short: peak RSS {rows[1] / rows[0]:.2f}x")


if __name__ == "__main__":
    main()
