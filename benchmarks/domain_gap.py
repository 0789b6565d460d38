"""How far is synthetic speech from the corpus, per engine, and does degrading it or varying its
prosody bring it closer?

    python benchmarks/domain_gap.py tess --engines espeak,mbrola,piper,hibari,resynth
    python benchmarks/domain_gap.py emodb --settings plain,jitter,degrade

Each row is one way of making the offline synthetic set: an engine (``--engines``: template text
in the corpus's language spoken by espeak, mbrola, piper or hibari, one voice a sentence; ``resynth``
remakes every recording of the corpus as a new WORLD speaker), or an espeak setting
(``--settings``; ``plain``; ``jitter``: ``-O prosody_jitter=0.3``; ``degrade``: ``sercli degrade
--snr 20 --reverb 0.3``; ``both``). On whisper-tiny.en features (every layer, mean+std, as
benchmarks/synthetic_gain.py), three figures:

- **domain AUC**: a logistic regression told real from synthetic features (5-fold,
  stratified); 1.0 means the two never overlap, 0.5 that they cannot be told apart.
- **synthetic -> real UA**: a logistic regression trained on the synthetic set only (each
  domain standardised with its own statistics) and tested on every real utterance: how much
  of the corpus's emotion the synthetic speech teaches on its own (chance is 1/classes).
  For ``resynth`` this is optimistic: each real utterance's own remake is in the training set.
- **WER**: the ``asr`` gate's Whisper round trip (``sercli filter -g asr``; whisper-tiny.en for
  English, whisper-base for German) on ``--wer-sample`` utterances, the same number of every
  emotion: mean word error rate of the transcript against the text spoken.

The synthetic sets are made once and cached under $SERCLI_BENCH_DIR/CORPUS/synthetic/ (the same
cache benchmarks/synthetic_gain.py uses). Markdown to stdout; numbers to .../domain_gap.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import features  # noqa: E402
from synthetic_gain import ROOT, sercli, synthetic  # noqa: E402

SETTINGS = {
    "plain": {"prosody_jitter": 0.0, "degrade": ""},
    "jitter": {"prosody_jitter": 0.3, "degrade": ""},
    "degrade": {"prosody_jitter": 0.0, "degrade": "--snr 20 --reverb 0.3"},
    "both": {"prosody_jitter": 0.3, "degrade": "--snr 20 --reverb 0.3"},
}


def matrix(records) -> "np.ndarray":
    import numpy as np

    from sercli.learning.data import read_features

    return np.stack([read_features(r).reshape(-1) for r in records])


def gap(real, syn, labels) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xr, xs = matrix(real), matrix(syn)
    x = np.concatenate([xr, xs])
    d = np.r_[np.zeros(len(xr)), np.ones(len(xs))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    p = cross_val_predict(clf, x, d, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
    auc = roc_auc_score(d, p)
    z = lambda a: (a - a.mean(0)) / np.maximum(a.std(0), 1e-6)  # noqa: E731  (each domain its own statistics)
    yr = np.array([labels.index(r["emotion"]) for r in real])
    ys = np.array([labels.index(r["emotion"]) for r in syn])
    model = LogisticRegression(C=0.01, max_iter=2000, class_weight="balanced").fit(z(xs), ys)
    ua = recall_score(yr, model.predict(z(xr)), average="macro")
    return {"domain_auc": float(auc), "syn_to_real_UA": float(ua), "n_real": len(real), "n_synthetic": len(syn)}


def wer(folder: Path, audio: Path, per_emotion: int) -> dict:
    """The asr gate's mean WER on ``per_emotion`` utterances of each emotion (the first ones)."""
    out = folder / f"wer-{per_emotion}.jsonl"
    if not out.exists():
        picked, seen = [], {}
        for line in open(audio):
            rec = json.loads(line)
            if seen.get(rec["emotion"], 0) < per_emotion:
                seen[rec["emotion"]] = seen.get(rec["emotion"], 0) + 1
                rec.setdefault("text", rec.get("transcript"))  # resynth: the source recording's words
                picked.append(json.dumps(rec) + "\n")
        sample = folder / f"wer-sample-{per_emotion}.jsonl"
        sample.write_text("".join(picked))
        sercli("filter", sample, "-g", "asr", "-O", "max_wer=1000", "--dropped", folder / f"wer-dropped-{per_emotion}.jsonl",
               "-o", out)
    scores = [((json.loads(line).get("provenance") or {}).get("filter") or {}).get("asr", {}).get("scores", {})
              for line in open(out)]
    values = [s["wer"] for s in scores if s.get("wer") is not None]
    return {"mean_wer": sum(values) / len(values) if values else None, "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--engines", default="", help="engines, each with its plain setting: espeak,mbrola,piper,hibari,resynth")
    ap.add_argument("--settings", default="", help=f"espeak settings: {','.join(SETTINGS)} (default: all, "
                    "when no --engines)")
    ap.add_argument("--n-text", type=int, default=100, help="template sentences per emotion")
    ap.add_argument("--wer-sample", type=int, default=10, help="utterances per emotion the WER is measured on "
                    "(0: no WER)")
    args = ap.parse_args()

    from sercli.core.records import read_records

    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench"))
    real = read_records(features(bench, args.corpus, "whisper"))
    labels = sorted({r["emotion"] for r in real})
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()] or ([] if engines else list(SETTINGS))
    todo = [(f"{e}", {"engine": e, **SETTINGS["plain"]}) for e in engines]
    todo += [(f"espeak {name}", {"engine": "espeak", **SETTINGS[name]}) for name in settings
             if not (name == "plain" and "espeak" in engines)]
    rows = {}
    for name, setting in todo:
        make = argparse.Namespace(n_text=args.n_text, gates=["none"], asr_model="", **setting)
        feats = synthetic(bench, args.corpus, labels, make)["none"]
        syn = read_records(feats)
        rows[name] = gap(real, [r for r in syn if r["emotion"] in labels], labels)
        if args.wer_sample:
            audio = feats.parent / ("degraded.jsonl" if setting["degrade"] else "audio.jsonl")
            rows[name].update(wer(feats.parent, audio, args.wer_sample))
    print(f"## {args.corpus}: real against offline synthetic speech (whisper-tiny.en, all layers, mean+std)\n")
    print("| synthetic set | domain AUC (1 = separable) | synthetic -> real UA | Whisper WER | utterances |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        w = "" if r.get("mean_wer") is None else f"{r['mean_wer']:.2f} ({r['n']})"
        print(f"| {name} | {r['domain_auc']:.3f} | {r['syn_to_real_UA']:.3f} | {w} | {r['n_synthetic']} |")
    print(f"\n(chance UA {1 / len(labels):.3f}; {bench / args.corpus / 'domain_gap.json'})")
    (bench / args.corpus / "domain_gap.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
