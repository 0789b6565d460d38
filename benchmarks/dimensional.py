"""Dimensional benchmark: leave-one-speaker-out CCC of arousal predicted by `sercli train --target`.

    python benchmarks/dimensional.py                       # EmoDB, linear and mlp heads, seeds 0,1,2
    python benchmarks/dimensional.py --heads linear --seeds 0 --features FEATS.jsonl

EmoDB has categories only, so each record is given an ``arousal`` field from its emotion with
the standard mapping (``--arousal``; high 1.0: anger, happiness, fear; low 0.0: sadness,
boredom; middle 0.5: neutral, disgust), then ``sercli train FEATS --target arousal --cv loso
--seeds S --head H`` runs per head with the defaults otherwise (speaker normalisation, refit).
Features: whisper-tiny.en, all layers, mean+std pooled, taken from ``$SERCLI_BENCH_DIR`` (or the
``--features`` records) or extracted there once as benchmarks/accuracy.py does. Each row: CCC
mean over folds x seeds with its 95% t-interval (indicative: folds share training speakers),
Pearson's r and RMSE means, the CCC of every prediction pooled, and the time. Markdown to stdout,
the numbers to $SERCLI_BENCH_DIR/dimensional-CORPUS.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDARD = "angry=1,happy=1,fear=1,sad=0,boredom=0,neutral=0.5,disgust=0.5"
WHISPER = ["--backbone", "whisper-tiny.en", "--layers", "all", "--pool", "mean+std"]


def sercli(*args) -> None:
    print("$ sercli " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "sercli", "-q", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def features(bench: Path, corpus: str, given: str | None) -> Path:
    """The corpus's whisper-tiny.en feature records: given, cached, or extracted once."""
    if given:
        return Path(given)
    folder = bench / corpus
    out = folder / "whisper.jsonl"
    if not out.exists():
        folder.mkdir(parents=True, exist_ok=True)
        env = os.environ.get("SERCLI_SHARED_DATA")
        sub = (Path(env) if env else ROOT.parent / "shared" / "data") / corpus
        manifest = folder / "manifest.jsonl"
        if not manifest.exists():
            sercli("prepare", corpus, sub / "audio" if (sub / "audio").is_dir() else sub, "-o", manifest)
        sercli("extract", manifest, *WHISPER, "--store", folder / "whisper-store", "-o", out)
    return out


def with_arousal(source: Path, out: Path, mapping: dict[str, float]) -> Path:
    """``source``'s records with ``arousal`` from their emotion; emotions not in ``mapping`` keep none
    (train skips them, with a count)."""
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("emotion") in mapping:
                rec["arousal"] = mapping[rec["emotion"]]
            lines.append(json.dumps(rec, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def parse_mapping(text: str) -> dict[str, float]:
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    return {k.strip(): float(v) for k, v in pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default="emodb")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--heads", default="linear,mlp")
    ap.add_argument("--features", help="feature records to use (default: whisper.jsonl in the bench folder)")
    ap.add_argument("--arousal", default=STANDARD, help="EMOTION=VALUE,... : the arousal field each emotion gets")
    args = ap.parse_args()
    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench"))
    folder = bench / args.corpus
    folder.mkdir(parents=True, exist_ok=True)
    records = with_arousal(features(bench, args.corpus, args.features), folder / "arousal.jsonl",
                           parse_mapping(args.arousal))
    rows = []
    for head in args.heads.split(","):
        run = folder / "runs" / f"dimensional-{head}"
        start = time.time()
        sercli("train", records, "--target", "arousal", "--cv", "loso", "--seeds", args.seeds, "--head", head,
               "--out", run, "--overwrite")
        agg = json.loads((run / "metrics.json").read_text())
        rows.append({"head": head, "seconds": round(time.time() - start), "n_jobs": agg["n_jobs"],
                     **{m: agg[f"{m}_arousal"] for m in ("CCC", "r", "RMSE")},
                     "pooled_CCC": agg["pooled"]["CCC_arousal"]})
    (bench / f"dimensional-{args.corpus}.json").write_text(json.dumps({"arousal": args.arousal, "rows": rows},
                                                                      indent=1))
    print(f"{args.corpus}, arousal from categories ({args.arousal}); LOSO, seeds {args.seeds}\n")
    print("| head | CCC (95% CI) | Pearson r | RMSE | pooled CCC | jobs | time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["CCC"]
        print(f"| `{r['head']}` | {c['mean']:.3f} ({c['ci95'][0]:.3f}-{c['ci95'][1]:.3f}) | {r['r']['mean']:.3f} "
              f"| {r['RMSE']['mean']:.3f} | {r['pooled_CCC']:.3f} | {r['n_jobs']} | {r['seconds']} s |")


if __name__ == "__main__":
    main()
