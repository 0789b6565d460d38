"""Accuracy benchmark: leave-one-speaker-out UA and WA on the shared real corpora.

    python benchmarks/accuracy.py [--corpora emodb,tess] [--features egemaps,compare,fbank]
                                  [--seeds 0,1,2] [--tune]
    python benchmarks/accuracy.py --strategies [--corpora emodb] [--features egemaps]

For every corpus and offline feature set it runs, under one protocol (leave one speaker out;
inside each training fold a validation part of whole speakers for every choice; the test
speaker never used for one):

* the classic floor: openSMILE functionals (eGeMAPS, ComParE) -> standardisation -> linear SVM
  (class-balanced), C chosen on the validation part, then refit on training + validation;
* the sercli head: `sercli train --cv loso --seeds ... --refit` (early stopping on the
  validation part, then retrained on all training speakers for the epochs found; with --tune,
  hidden size and dropout chosen per fold by validation UA).

With --strategies it instead compares every strategy (the four ways to use synthetic speech
and the classic augmentations) on the first corpus and feature set, with synthetic speech from
`sercli gen-text` (offline template LLM, 100 sentences per emotion) | `sercli synthesize`
(espeak), then prints `sercli eval --compare` (paired tests against real-only).

Cost on a shared 2-core CPU: EmoDB, all features, 3 seeds: ~35 min (fbank: 25 of them);
TESS fbank is the slow one (~15 min per fold and seed: run it with --seeds 0).

Manifests come from `sercli prepare`, features from `sercli extract`, both cached under
$SERCLI_BENCH_DIR (default: work/bench in the repository, which git ignores). The table goes
to stdout (markdown) and, with all numbers, to $SERCLI_BENCH_DIR/accuracy.json.
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
BACKBONES = {  # backbone -> extract options. Functionals in float32: ComParE overflows float16.
    "egemaps": ["--pool", "mean", "--store-dtype", "float32"],
    "compare": ["--pool", "mean", "--store-dtype", "float32"],
    "fbank": ["--pool", "none", "--store-dtype", "float16"],
}
SVM_FEATURES = ("egemaps", "compare")
SVM_C = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# The head: early stopping on validation UA, then refit on training + validation speakers for
# the epochs found; statistics pooling over frames for frame features. --tune adds a choice
# of hidden size and dropout per fold by validation UA (4x the training time).
HEAD = ["--refit"]
HEAD_FRAMES = ["--pool", "mean+std"]
HEAD_TUNE = ["--tune", "hidden=64,256", "--tune", "dropout=0.2,0.5"]


def shared_data() -> Path:
    env = os.environ.get("SERCLI_SHARED_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    if not path.is_dir():
        sys.exit(f"no shared corpora at {path} (set SERCLI_SHARED_DATA)")
    return path


def sercli(*args) -> None:
    cmd = [sys.executable, "-m", "sercli", "-q", *map(str, args)]
    print("$ sercli " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def features(bench: Path, corpus: str, backbone: str) -> Path:
    """The corpus's feature records for ``backbone`` (prepared and extracted once, then cached)."""
    folder = bench / corpus
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    if not manifest.exists():
        sercli("prepare", corpus, shared_data() / corpus, "-o", manifest)
    out = folder / f"{backbone}.jsonl"
    if not out.exists():
        sercli("extract", manifest, "--backbone", backbone, *BACKBONES[backbone],
               "--store", folder / f"{backbone}-store", "-o", out)
    return out


def svm_floor(feature_records: Path, seeds: list[int]) -> dict:
    """Standardisation + linear SVM, C chosen by validation UA, on the sercli folds."""
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from sercli.cv import make_folds, split_val
    from sercli.data import Examples
    from sercli.metrics import compute_metrics
    from sercli.records import read_records
    from sercli.evaluate import summary
    from sercli.runs import select_labels

    labels, records = select_labels(read_records(feature_records), [])
    index = {lab: i for i, lab in enumerate(labels)}

    def xy(recs):
        ex = Examples.build(recs, index, 0)
        return np.stack([ex.features(i).reshape(-1) for i in range(len(ex))]), np.asarray(ex.labels)

    def svm(c):
        return make_pipeline(StandardScaler(), LinearSVC(C=c, class_weight="balanced", max_iter=20000, random_state=0))

    jobs, y_all, p_all = [], [], []
    for fold in make_folds(records, "loso"):
        for seed in seeds:
            train, val = split_val(fold, 0.2, seed)
            (xt, yt), (xv, yv), (xs, ys) = xy(train), xy(val), xy(fold.test)
            scores = [compute_metrics(yv, svm(c).fit(xt, yt).predict(xv), labels)["UA"] for c in SVM_C]
            best = SVM_C[int(np.argmax(scores))]
            pred = svm(best).fit(np.concatenate([xt, xv]), np.concatenate([yt, yv])).predict(xs)
            m = compute_metrics(ys.tolist(), pred.tolist(), labels)
            jobs.append({"fold": fold.name, "seed": seed, "C": best, "UA": m["UA"], "WA": m["WA"]})
            y_all += ys.tolist()
            p_all += pred.tolist()
    pooled = compute_metrics(y_all, p_all, labels)
    return {"UA": summary([j["UA"] for j in jobs]), "WA": summary([j["WA"] for j in jobs]),
            "pooled": {"UA": pooled["UA"], "WA": pooled["WA"]}, "jobs": jobs}


def head(bench: Path, feature_records: Path, name: str, seeds: list[int], tune: bool, frames: bool) -> dict:
    out = bench / "runs" / name
    if not (out / "metrics.json").exists():
        sercli("train", feature_records, "--cv", "loso", "--seeds", ",".join(map(str, seeds)), *HEAD,
               *(HEAD_FRAMES if frames else []), *(HEAD_TUNE if tune else []), "--out", out, "--overwrite")
    agg = json.loads((out / "metrics.json").read_text())
    return {"UA": agg["UA"], "WA": agg["WA"], "pooled": {"UA": agg["pooled"]["UA"], "WA": agg["pooled"]["WA"]},
            "run": str(out)}


STRATEGIES = (  # name, options: the synthetic ratio is the paper's 1 synthetic : 2 real (0.5),
    # swept for mix
    ("real-only", []),
    ("mix", ["--sweep", "ratio=0.25,0.5,1.0"]),
    ("adversarial", ["-O", "ratio=0.5"]),
    ("transfer", []),
    ("curriculum", ["-O", "ratio=0.5", "-O", "stages=3"]),
    ("noise", []),
    ("specaugment", []),
    ("mixup", []),
)


def synthetic(bench: Path, corpus: str, backbone: str, emotions: list[str]) -> Path:
    """gen-text | synthesize | extract, once: 100 template sentences per emotion spoken by espeak."""
    folder = bench / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    text, speech = folder / "text.jsonl", folder / "speech.jsonl"
    if not speech.exists():
        sercli("gen-text", "-b", "template", "-e", ",".join(emotions), "-n", 100, "--seed", 0, "-o", text)
        sercli("synthesize", text, "-t", "espeak", "-d", folder / "audio", "-o", speech)
    out = folder / f"{backbone}.jsonl"
    if not out.exists():
        sercli("extract", speech, "--backbone", backbone, *BACKBONES[backbone],
               "--store", folder / f"{backbone}-store", "-o", out)
    return out


def strategies(bench: Path, corpus: str, backbone: str, seeds: list[int]) -> None:
    from sercli.records import read_records

    real = features(bench, corpus, backbone)
    emotions = sorted({r["emotion"] for r in read_records(real)})
    syn = synthetic(bench, corpus, backbone, emotions)
    runs = []
    for name, options in STRATEGIES:
        sweep = "--sweep" in options
        out = bench / "strategies" / f"{corpus}-{backbone}-{name}{'-sweep' if sweep else ''}"
        if not (out / ("sweep.json" if sweep else "metrics.json")).exists():
            sercli("train", real, "--synthetic", syn, "--strategy", name, *options, "--cv", "loso",
                   "--seeds", ",".join(map(str, seeds)), "--refit", "--out", out, "--overwrite")
        runs.append(out)  # `eval --compare` expands a sweep into its runs
    print(f"$ sercli eval --compare {' '.join(map(str, runs))}", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "sercli", "eval", "--compare", *map(str, runs)],
                          check=True, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    rows = json.loads(proc.stdout)["runs"]
    (bench / "strategies.json").write_text(json.dumps(rows, indent=2))
    print("| strategy | UA mean ± std (95% CI) | WA mean ± std | pooled UA | pooled WA | ΔUA | p (Wilcoxon) | p (t) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ua, wa, vs = row["UA"], row["WA"], row.get("vs_first") or {}
        p = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
        print(f"| {row['strategy']} | {ua['mean']:.3f} ± {ua['std']:.3f} ({ua['ci95'][0]:.3f}-{ua['ci95'][1]:.3f}) | "
              f"{wa['mean']:.3f} ± {wa['std']:.3f} | {row['pooled_UA']:.3f} | {row['pooled_WA']:.3f} | "
              f"{'-' if vs.get('delta') is None else format(vs['delta'], '+.3f')} | {p(vs.get('wilcoxon_p'))} | "
              f"{p(vs.get('ttest_p'))} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default="emodb,tess")
    parser.add_argument("--features", default="egemaps,compare,fbank")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tune", action="store_true", help="Also choose hidden size and dropout by validation UA.")
    parser.add_argument("--strategies", action="store_true", help="Compare the strategies instead (first corpus and features).")
    args = parser.parse_args()
    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench")).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.strategies:
        strategies(bench, args.corpora.split(",")[0], args.features.split(",")[0], seeds)
        return
    rows = []
    for corpus in args.corpora.split(","):
        for backbone in args.features.split(","):
            recs = features(bench, corpus, backbone)
            if backbone in SVM_FEATURES:
                t = time.time()
                rows.append({"corpus": corpus, "features": backbone, "model": "linear SVM (floor)",
                             **svm_floor(recs, seeds[:1]), "seconds": round(time.time() - t)})
                print_row(rows[-1], first=len(rows) == 1)
            t = time.time()
            rows.append({"corpus": corpus, "features": backbone, "model": "sercli head" + (" (tuned on val)" if args.tune else ""),
                         **head(bench, recs, f"{corpus}-{backbone}{'-tuned' if args.tune else ''}", seeds, args.tune,
                                frames=BACKBONES[backbone][1] == "none"),
                         "seconds": round(time.time() - t)})
            print_row(rows[-1], first=len(rows) == 1)
            (bench / "accuracy.json").write_text(json.dumps(rows, indent=2))


def print_row(row: dict, first: bool) -> None:
    if first:
        print("| corpus | features | model | UA mean ± std (95% CI) | WA mean ± std | pooled UA | pooled WA | folds x seeds |")
        print("|---|---|---|---|---|---|---|---|")
    ua, wa = row["UA"], row["WA"]
    print(f"| {row['corpus']} | {row['features']} | {row['model']} | {ua['mean']:.3f} ± {ua['std']:.3f} "
          f"({ua['ci95'][0]:.3f}-{ua['ci95'][1]:.3f}) | {wa['mean']:.3f} ± {wa['std']:.3f} | "
          f"{row['pooled']['UA']:.3f} | {row['pooled']['WA']:.3f} | {ua['n']} |", flush=True)


if __name__ == "__main__":
    main()
