"""Accuracy benchmark: every model sercli offers against the classic ones, on the same folds.

    python benchmarks/accuracy.py emodb            # one corpus per command
    python benchmarks/accuracy.py tess --seeds 0,1,2 --models lr,svm,default,heads,finetune

For one shared corpus (../shared/data, or $SERCLI_SHARED_DATA), leave one speaker out, each
fold trained with each seed (folds x seeds jobs). Inside each training fold a validation part
of whole speakers (by utterance when a fold has one training speaker, as in TESS) makes every
choice; the test speaker never does. Rows, side by side:

* ``lr``: scikit-learn StandardScaler + LogisticRegression (class-balanced) on the same
  whisper-tiny.en features (all hidden states, mean+std pooled, concatenated), C chosen on the
  validation part from a grid, refit on training + validation; and the same after per-speaker
  normalisation (``--norm speaker``'s module), the fair comparison for the rows that use it;
* ``svm``: ComParE 2016 functionals (openSMILE) + StandardScaler + linear SVM, C on validation;
* ``default``: plain ``sercli train FEATURES --cv loso`` (no other flag: what a user gets);
* ``heads``: every built-in head (`sercli plugins`), with ``--refit`` (and the attentive head on
  frame-level features), and with ``--norm speaker``; the best is marked;
* ``finetune``: ``sercli train AUDIO --cv loso --finetune whisper-tiny.en`` (LoRA), on the audio;
  expensive on a CPU: ``--finetune-seeds`` (default: the first seed) sets its seeds.

Each row: UA and WA mean over jobs, the 95% t-interval of the mean UA (folds x seeds are not
independent draws: indicative, as in the SER literature), pooled UA over all predictions, and the
time it took (features cached, so extraction time is not counted). Markdown to stdout; all numbers
to $SERCLI_BENCH_DIR/accuracy-CORPUS.json (default work/bench, which git ignores).
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
WHISPER = "whisper-tiny.en"
FEATURES = {  # name -> extract options
    "whisper": ["--backbone", WHISPER, "--layers", "all", "--pool", "mean+std"],
    "whisper-frames": ["--backbone", WHISPER, "--layers", "all", "--pool", "none"],
    # functionals in float32: ComParE's energies overflow float16
    "compare": ["--backbone", "compare", "--pool", "mean", "--store-dtype", "float32"],
}
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
MODELS = ("lr", "svm", "default", "heads", "finetune")


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


def manifest(bench: Path, corpus: str) -> Path:
    folder = bench / corpus
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "manifest.jsonl"
    if not out.exists():
        sub = shared_data() / corpus
        sercli("prepare", corpus, sub / "audio" if (sub / "audio").is_dir() else sub, "-o", out)
    return out


def features(bench: Path, corpus: str, name: str) -> Path:
    """The corpus's feature records (extracted once, then cached). ``name``: a key of FEATURES,
    or a backbone name (every layer, mean+std pooled; ``whisper`` is whisper-tiny.en's)."""
    folder = bench / corpus
    out = folder / f"{name}.jsonl"
    if not out.exists():
        flags = FEATURES.get(name) or ["--backbone", name, "--layers", "all", "--pool", "mean+std"]
        sercli("extract", manifest(bench, corpus), *flags, "--store", folder / f"{name}-store", "-o", out)
    return out


def features_name(backbone: str) -> str:
    return "whisper" if backbone == WHISPER else backbone


# -- the scikit-learn rows: same folds, same validation parts as sercli ---------------------

def sklearn_row(records_path: Path, seeds: list[int], make, norm: bool) -> dict:
    """``make(C)`` -> an estimator; C chosen by validation UA, refit on training + validation."""
    import numpy as np

    from sercli.learning.cv import make_folds, split_val
    from sercli.learning.data import Examples
    from sercli.evaluation.evaluate import summary
    from sercli.core.metrics import compute_metrics
    from sercli.core.records import read_records
    from sercli.runs.jobs import select_labels

    labels, records = select_labels(read_records(records_path), [])
    index = {lab: i for i, lab in enumerate(labels)}

    def xy(recs):
        ex = Examples.build(recs, index, 0)
        if norm:
            from sercli.learning.speakernorm import apply

            ex = apply(ex, "benchmark")
        return np.stack([ex.features(i).reshape(-1) for i in range(len(ex))]), np.asarray(ex.labels)

    jobs, y_all, p_all = [], [], []
    for fold in make_folds(records, "loso"):
        for seed in seeds:
            train, val = split_val(fold, 0.2, seed)
            (xt, yt), (xv, yv), (xs, ys) = xy(train), xy(val), xy(fold.test)
            scores = [compute_metrics(yv.tolist(), make(c).fit(xt, yt).predict(xv).tolist(), labels)["UA"] for c in C_GRID]
            best = C_GRID[int(np.argmax(scores))]
            pred = make(best).fit(np.concatenate([xt, xv]), np.concatenate([yt, yv])).predict(xs)
            m = compute_metrics(ys.tolist(), pred.tolist(), labels)
            jobs.append({"fold": fold.name, "seed": seed, "C": best, "UA": m["UA"], "WA": m["WA"]})
            y_all += ys.tolist()
            p_all += pred.tolist()
    pooled = compute_metrics(y_all, p_all, labels)
    return {"UA": summary([j["UA"] for j in jobs]), "WA": summary([j["WA"] for j in jobs]),
            "pooled_UA": pooled["UA"], "jobs": jobs}


def logistic(c):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000))


def linear_svm(c):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return make_pipeline(StandardScaler(), LinearSVC(C=c, class_weight="balanced", max_iter=20000, random_state=0))


# -- the sercli rows -------------------------------------------------------------------------

def sercli_row(bench: Path, corpus: str, name: str, inputs: Path, seeds: list[int], flags: list[str]) -> dict:
    out = bench / corpus / "runs" / name
    if not (out / "metrics.json").exists():
        sercli("train", inputs, "--cv", "loso", "--seeds", ",".join(map(str, seeds)), *flags,
               "--out", out, "--overwrite")
    agg = json.loads((out / "metrics.json").read_text())
    return {"UA": agg["UA"], "WA": agg["WA"], "pooled_UA": agg["pooled"]["UA"], "run": str(out)}


def head_names() -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "sercli", "plugins", "--json"], check=True,
                          capture_output=True, text=True)
    data = json.loads(proc.stdout)
    names = set()
    for plugin in data if isinstance(data, list) else data.get("plugins", []):
        names.update(h["name"] if isinstance(h, dict) else h for h in (plugin.get("registered") or {}).get("head", []))
    return sorted(names)


def frame_level(head: str) -> bool:
    from sercli.core import plugins

    return bool(getattr(plugins.get_class("head", head), "frame_level", False))


def rows_for(bench: Path, corpus: str, models: list[str], seeds: list[int], ft_seeds: list[int], heads: list[str],
             backbone: str = WHISPER):
    feats = features(bench, corpus, features_name(backbone))
    label = f"{backbone}, all layers, mean+std"
    tag = "" if backbone == WHISPER else f"-{backbone}"
    if "lr" in models:
        for norm in (False, True):
            yield (f"logistic regression{' + speaker norm' if norm else ''}", label,
                   lambda norm=norm: sklearn_row(feats, seeds, logistic, norm))
    if "svm" in models:
        compare = features(bench, corpus, "compare")
        yield ("linear SVM", "ComParE 2016 functionals", lambda: sklearn_row(compare, seeds, linear_svm, False))
    if "default" in models:
        yield ("`sercli train` default", label, lambda: sercli_row(bench, corpus, "default" + tag, feats, seeds, []))
    if "heads" in models:
        for head in heads or head_names():
            frames = frame_level(head)
            inputs = features(bench, corpus, "whisper-frames") if frames else feats
            what = f"{WHISPER}, all layers, frames" if frames else label
            for norm in ("none", "speaker"):
                flags = ["--head", head, "--refit", "--norm", norm]
                yield (f"head `{head}` --refit{' --norm speaker' if norm == 'speaker' else ''}", what,
                       lambda flags=flags, n=f"{head}-{norm}", i=inputs: sercli_row(bench, corpus, n, i, seeds, flags))
    if "finetune" in models:
        flags = ["--finetune", WHISPER, "--finetune-mode", "lora"]
        yield ("fine-tuned (LoRA) + default head", f"{WHISPER} audio",
               lambda: sercli_row(bench, corpus, "finetune-lora", manifest(bench, corpus), ft_seeds, flags))


def print_row(row: dict, first: bool) -> None:
    if first:
        print("| model | features | UA mean (95% CI) | WA mean | pooled UA | jobs | time |")
        print("|---|---|---|---|---|---|---|")
    ua, wa = row["UA"], row["WA"]
    print(f"| {row['model']} | {row['features']} | {ua['mean']:.3f} ({ua['ci95'][0]:.3f}-{ua['ci95'][1]:.3f}) | "
          f"{wa['mean']:.3f} | {row['pooled_UA']:.3f} | {ua['n']} | {row['seconds']} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="A corpus under ../shared/data: emodb or tess.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--finetune-seeds", default=None, help="Seeds of the fine-tuned row (default: the first seed).")
    parser.add_argument("--models", default=",".join(MODELS), help=f"Rows to run, of {','.join(MODELS)}.")
    parser.add_argument("--backbone", default=WHISPER, help="The frozen encoder of the lr and default rows "
                        "(whisper-tiny.en, whisper-base, ...); the heads rows stay on whisper-tiny.en.")
    parser.add_argument("--heads", default="", help="Heads of the `heads` rows (default: every built-in head; the "
                        "frame-level ones take ~25 min per seed on TESS on 2 CPU cores).")
    args = parser.parse_args()
    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench")).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    ft_seeds = [int(s) for s in args.finetune_seeds.split(",")] if args.finetune_seeds else seeds[:1]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        sys.exit(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")
    rows = []
    heads = [h for h in args.heads.split(",") if h]
    for model, what, run in rows_for(bench, args.corpus, models, seeds, ft_seeds, heads, args.backbone):
        t = time.time()
        rows.append({"corpus": args.corpus, "model": model, "features": what, **run(), "seconds": round(time.time() - t)})
        print_row(rows[-1], first=len(rows) == 1)
        (bench / f"accuracy-{args.corpus}.json").write_text(json.dumps(rows, indent=2))
    heads = [r for r in rows if r["model"].startswith("head ")]
    if heads:
        best = max(heads, key=lambda r: r["UA"]["mean"])
        print(f"\nbest head: {best['model']} (UA {best['UA']['mean']:.3f})", flush=True)


if __name__ == "__main__":
    main()
