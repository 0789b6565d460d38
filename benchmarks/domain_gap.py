"""How far is synthetic speech from the corpus, and does degrading it or varying its prosody
bring it closer?

    python benchmarks/domain_gap.py tess
    python benchmarks/domain_gap.py emodb --settings plain,jitter,degrade

For each way of making the offline synthetic set (template text in the corpus's language,
espeak; ``plain``; ``jitter``: ``-O prosody_jitter=0.3``; ``degrade``: ``sercli degrade --snr
20 --reverb 0.3``; ``both``), on whisper-tiny.en features (every layer, mean+std, as
benchmarks/synthetic_gain.py), two figures:

- **domain AUC**: a logistic regression told real from synthetic features (5-fold,
  stratified); 1.0 means the two never overlap, 0.5 that they cannot be told apart.
- **synthetic -> real UA**: a logistic regression trained on the synthetic set only (each
  domain standardised with its own statistics) and tested on every real utterance: how much
  of the corpus's emotion the synthetic speech teaches on its own (chance is 1/classes).

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
from synthetic_gain import ROOT, synthetic  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--n-text", type=int, default=100, help="template sentences per emotion")
    args = ap.parse_args()

    from sercli.core.records import read_records

    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench"))
    real = read_records(features(bench, args.corpus, "whisper"))
    labels = sorted({r["emotion"] for r in real})
    rows = {}
    for name in [s.strip() for s in args.settings.split(",") if s.strip()]:
        make = argparse.Namespace(n_text=args.n_text, gates=["none"], asr_model="", **SETTINGS[name])
        syn = read_records(synthetic(bench, args.corpus, labels, make)["none"])
        rows[name] = gap(real, [r for r in syn if r["emotion"] in labels], labels)
    print(f"## {args.corpus}: real against offline synthetic speech (whisper-tiny.en, all layers, mean+std)\n")
    print("| synthetic set | domain AUC (1 = separable) | synthetic -> real UA | utterances |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['domain_auc']:.3f} | {r['syn_to_real_UA']:.3f} | {r['n_synthetic']} |")
    print(f"\n(chance UA {1 / len(labels):.3f}; {bench / args.corpus / 'domain_gap.json'})")
    (bench / args.corpus / "domain_gap.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
