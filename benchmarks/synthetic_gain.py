"""When does synthetic speech help, and how much? The learning curve per strategy.

    python benchmarks/synthetic_gain.py emodb                 # the full table (slow on a CPU)
    python benchmarks/synthetic_gain.py emodb --seeds 0 --strategies real-only,mix   # cheap mode
    python benchmarks/synthetic_gain.py tess --fractions 0.1,0.25,0.5,1.0              # a finer curve
    python benchmarks/synthetic_gain.py tess --strategies "real-only,mix:ratio=1"       # a fixed amount
    python benchmarks/synthetic_gain.py emodb --train-args "--restarts 3"              # every run trained so

For one shared corpus (../shared/data, or $SERCLI_SHARED_DATA), leave one speaker out, each fold
trained with each seed. Synthetic speech is made offline in the corpus's language
(``gen-text -b template --language L``, then ``synthesize -t espeak``, whose voices follow the
records' language), optionally degraded (``--degrade "--snr 20 --band 300-3400"``) and gated
(``--gates none,asr``: ``sercli filter -g asr``, a Whisper round trip; English needs nothing
more, another language a multilingual Whisper: ``--asr-model hf:openai/whisper-small``).
Real and synthetic features: whisper-tiny.en, every layer, mean+std pooled (the real ones are
the cache benchmarks/accuracy.py makes). Every run is ``sercli train REAL --synthetic SYN
--strategy S --cv loso --real-fraction F``; the strategies choose their amount of synthetic
data per fold by validation UA (their default ``ratio=auto``), adversarial with ``--head mlp`` (the
default linear head learns no embedding for its domain loss to change), and its gain is measured against
real-only with the same ``mlp`` head (a row of its own); ``NAME:KEY=VALUE;KEY=VALUE`` runs a
strategy with options instead (``mix:ratio=1``: one synthetic utterance per real one).

Each row: UA mean and its 95% t-interval over folds x seeds, the gain over real-only at the
same fraction (mean of the paired per-job differences, with its 95% interval), and the paired
p-values against real-only (Wilcoxon and t-test on per-fold UA, as ``sercli eval --compare``).
Markdown to stdout, all numbers to $SERCLI_BENCH_DIR/CORPUS/synthetic_gain.json and the learning
curve (UA against real fraction, one line per strategy and gate) to .../synthetic_gain.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import WHISPER, features, manifest, sercli  # noqa: E402  (the cached real features)

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = {"emodb": "de", "tess": "en", "ravdess": "en", "crema_d": "en", "iemocap": "en", "msp_podcast": "en"}
STRATEGIES = ("real-only", "mix", "curriculum", "transfer", "adversarial")
EXTRACT = ["--backbone", WHISPER, "--layers", "all", "--pool", "mean+std"]
# adversarial needs a head that learns its embedding (the default linear head has none to learn)
HEAD = {"adversarial": "mlp"}


# engines that read audio records (the corpus's own recordings) instead of text
READS_AUDIO = {"resynth"}


def engine_options(args) -> list[str]:
    opts = [f"prosody_jitter={args.prosody_jitter}"] if args.prosody_jitter else []
    opts += [kv for kv in getattr(args, "engine_options", "").split(";") if kv]
    return [a for kv in opts for a in ("-O", kv)]


def synthetic(bench: Path, corpus: str, labels: list[str], args) -> dict[str, Path]:
    """gate -> synthetic feature records, made once per setting (every stage resumes).

    A text engine speaks template sentences in the corpus's language (``--voices-per-text``
    voices each); ``resynth`` remakes every recording of the corpus as new speakers (``train``
    keeps, per job, only those derived from the job's own kept training recordings)."""
    lang = LANGUAGE.get(corpus, "en")
    engine = getattr(args, "engine", "espeak")
    opts = engine_options(args)
    if engine in READS_AUDIO:
        tag = engine
    else:
        tag = f"{lang}-n{args.n_text}" + ("" if engine == "espeak" else f"-{engine}")
    voices = getattr(args, "voices_per_text", 1)
    tag += (f"-v{voices}" if voices != 1 else "") + (f"-j{args.prosody_jitter:g}" if args.prosody_jitter else "") + (
        "-" + safe_tag(getattr(args, "engine_options", "")) if getattr(args, "engine_options", "") else "") + (
        "-deg" + "".join(args.degrade.split()).replace("--", "_") if args.degrade else "")
    folder = bench / corpus / "synthetic" / tag
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / "audio.jsonl"
    if engine in READS_AUDIO:
        source = manifest(bench, corpus)
    else:
        source = folder / "texts.jsonl"
        if not source.exists():
            sercli("gen-text", "-b", "template", "--language", lang, "-n", args.n_text, "-e", ",".join(labels),
                   "--seed", 0, "-o", source)
    sercli("synthesize", source, "-t", engine, *opts, "--voices-per-text", voices, "-d", folder / "audio",
           "-o", audio)
    if args.degrade:
        sercli("degrade", audio, *args.degrade.split(), "-d", folder / "degraded", "-o", folder / "degraded.jsonl")
        audio = folder / "degraded.jsonl"
    out = {}
    for gate in args.gates:
        source = audio
        if gate != "none":
            model = ["-O", f"model={args.asr_model}"] if args.asr_model else []
            if gate == "asr" and lang != "en" and not args.asr_model:
                print(f"(skipping the asr gate for {corpus}: {WHISPER} is English only; pass --asr-model "
                      "hf:ID_OR_DIR of a multilingual Whisper)", file=sys.stderr)
                continue
            source = folder / f"{gate}.jsonl"
            sercli("filter", audio, "-g", gate, *model, "--dropped", folder / f"{gate}-dropped.jsonl", "-o", source)
        feats = folder / f"features-{gate}.jsonl"
        if not feats.exists() or sum(1 for _ in open(feats)) < sum(1 for _ in open(source)):
            sercli("extract", source, *EXTRACT, "--store", folder / "store", "-o", feats)
        out[gate] = feats
    return out


def safe_tag(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)


def gate_report(folder: Path, gate: str) -> dict:
    """How many utterances the gate kept and dropped, and their word error rates."""
    kept = [json.loads(line) for line in open(folder / f"{gate}.jsonl")]
    dropped = [json.loads(line) for line in open(folder / f"{gate}-dropped.jsonl")]
    wer = [((r.get("provenance") or {}).get("filter") or {}).get(gate, {}).get("scores", {}).get("wer")
           for r in kept + dropped]
    wer = [w for w in wer if w is not None]
    return {"kept": len(kept), "dropped": len(dropped), "mean_wer": sum(wer) / len(wer) if wer else None}


def run(bench: Path, corpus: str, real: Path, syn: Path | None, strategy: str, fraction: float, seeds: str,
        name: str, jobs: int, head: str | None = None, train_args: tuple[str, ...] = ()) -> dict:
    gain = "gain" + (f"-{safe_tag(' '.join(train_args))}" if train_args else "")  # its own cache
    out = bench / corpus / gain / (name if seeds == "0,1,2" else f"{name}-seeds{seeds.replace(',', '_')}")
    if not (out / "metrics.json").exists():
        extra = ["--synthetic", syn] if syn is not None and strategy != "real-only" else []
        name_, _, opts = strategy.partition(":")  # "mix:ratio=1;ratios=0,1": a strategy with -O options
        extra += [a for kv in opts.split(";") if kv for a in ("-O", kv)]
        head = head or HEAD.get(name_)
        extra += ["--head", head] if head else []
        sercli("train", real, *extra, "--strategy", name_, "--cv", "loso", "--seeds", seeds,
               "--real-fraction", fraction, "--jobs", jobs, "--out", out, "--overwrite", *train_args)
    agg = json.loads((out / "metrics.json").read_text())
    agg["run"] = str(out)
    return agg


def paired(base: dict, other: dict) -> dict:
    """The gain over ``base``: per-job (fold, seed) differences and their interval, and the
    per-fold paired tests of `sercli eval --compare`."""
    from sercli.evaluation.evaluate import paired_tests, summary

    a = {(j["fold"], j["seed"]): j["UA"] for j in base["jobs"]}
    d = [j["UA"] - a[(j["fold"], j["seed"])] for j in other["jobs"] if (j["fold"], j["seed"]) in a]
    return {"gain": summary(d), **paired_tests(base, other)}


def used(agg: dict) -> tuple[float, int, int] | None:
    """(mean synthetic utterances the jobs trained on, jobs that trained on any, jobs), from each
    job's config.json counts.synthetic_used; None when no job has one."""
    values = []
    for j in agg["jobs"]:
        cfg = Path(agg["run"]) / j["name"] / "config.json"
        if cfg.exists():
            values.append(json.loads(cfg.read_text())["counts"].get("synthetic_used", 0))
    return (sum(values) / len(values), sum(1 for v in values if v), len(values)) if values else None


def curve(rows: list[dict], path: Path, title: str) -> None:
    from sercli.evaluation.figures import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    series: dict[str, list] = {}
    for r in rows:
        series.setdefault(r["label"], []).append(r)
    for label, pts in series.items():
        pts.sort(key=lambda r: r["fraction"])
        x = [p["fraction"] for p in pts]
        y = [p["UA"]["mean"] for p in pts]
        err = [[p["UA"]["mean"] - p["UA"]["ci95"][0] for p in pts], [p["UA"]["ci95"][1] - p["UA"]["mean"] for p in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label, linestyle="--" if "gated" in label else "-")
    ax.set_xlabel("fraction of the real training data")
    ax.set_ylabel("UA (mean, 95% CI over folds x seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--fractions", default="0.25,1.0")
    ap.add_argument("--gates", default="none,asr", help="none and/or gate names (sercli filter -g)")
    ap.add_argument("--asr-model", default="", help="the asr gate's model (a multilingual Whisper for non-English)")
    ap.add_argument("--n-text", type=int, default=100, help="template sentences per emotion")
    ap.add_argument("--engine", default="espeak", help="the TTS engine: espeak, mbrola, piper, resynth (remakes the "
                    "corpus's own recordings)")
    ap.add_argument("--engine-options", default="", help='the engine\'s -O options, "KEY=VALUE;KEY=VALUE"')
    ap.add_argument("--voices-per-text", type=int, default=1, help="voices speaking each sentence (or recording)")
    ap.add_argument("--prosody-jitter", type=float, default=0.0, help="espeak's per-utterance prosody jitter")
    ap.add_argument("--degrade", default="", help='sercli degrade options, e.g. "--snr 20 --band 300-3400"')
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--train-args", default="", help='more `sercli train` options for every run, the baseline '
                    'too, e.g. "--restarts 3" (runs cached apart)')
    args = ap.parse_args()
    train_args = tuple(shlex.split(args.train_args))
    args.gates = [g.strip() for g in args.gates.split(",") if g.strip()]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    fractions = [float(f) for f in args.fractions.split(",")]

    from sercli.core.fsutil import safe_name
    from sercli.core.records import read_records

    bench = Path(os.environ.get("SERCLI_BENCH_DIR", ROOT / "work" / "bench"))
    real = features(bench, args.corpus, "whisper")
    labels = sorted({r["emotion"] for r in read_records(real)})
    syn = synthetic(bench, args.corpus, labels, args) if any(s != "real-only" for s in strategies) else {}
    setting = next(iter(syn.values())).parent.name if syn else "none"
    rows, base = [], {}
    for fraction in fractions:
        base[fraction] = run(bench, args.corpus, real, None, "real-only", fraction, args.seeds,
                             f"real-only/f{fraction:g}", args.jobs, train_args=train_args)
        for gate, feats in syn.items():
            for strategy in strategies:
                label = strategy + (f" ({HEAD[strategy.split(':')[0]]} head)" if strategy.split(":")[0] in HEAD else "")
                label += "" if gate == "none" or strategy == "real-only" else f" gated {gate}"
                if strategy == "real-only":
                    if gate != args.gates[0]:
                        continue
                    agg = base[fraction]
                else:
                    agg = run(bench, args.corpus, real, feats, strategy, fraction, args.seeds,
                              f"{setting}/{gate}/{safe_name(strategy)}/f{fraction:g}", args.jobs,
                              train_args=train_args)
                head = HEAD.get(strategy.split(":")[0])
                if head and (fraction, head) not in base:  # the baseline with the strategy's own head
                    base[fraction, head] = run(bench, args.corpus, real, None, "real-only", fraction, args.seeds,
                                               f"real-only-{head}/f{fraction:g}", args.jobs, head=head,
                                               train_args=train_args)
                    rows.append({"label": f"real-only ({head} head)", "strategy": "real-only", "gate": "none",
                                 "fraction": fraction, "UA": base[fraction, head]["UA"], "synthetic_used": 0,
                                 "run": base[fraction, head]["run"]})
                row = {"label": label, "strategy": strategy, "gate": gate, "fraction": fraction, "UA": agg["UA"],
                       "run": agg["run"]}
                counts = used(agg)
                row["synthetic_used"], row["jobs_with_synthetic"] = (counts[0], counts[1:]) if counts else (None, None)
                if strategy != "real-only":  # against real-only with the same head
                    row["vs_real_only"] = paired(base[(fraction, head) if head else fraction], agg)
                rows.append(row)
        if not syn:
            rows.append({"label": "real-only", "strategy": "real-only", "gate": "none", "fraction": fraction,
                         "UA": base[fraction]["UA"], "synthetic_used": 0, "run": base[fraction]["run"]})

    trained = f" ({args.train_args})" if train_args else ""
    print(f"## {args.corpus}: LOSO, seeds {args.seeds}, synthetic {setting}{trained} "
          f"({', '.join(f'{g}: {sum(1 for _ in open(p))}' for g, p in syn.items())} utterances)\n")
    print("| real fraction | strategy | UA mean [95% CI] | gain vs real-only [95% CI] | p (Wilcoxon / t) | synthetic used (mean per job; jobs with any) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ua = r["UA"]
        cell = f"{ua['mean']:.3f} [{ua['ci95'][0]:.3f}, {ua['ci95'][1]:.3f}]"
        vs = r.get("vs_real_only")
        gain = f"{vs['gain']['mean']:+.3f} [{vs['gain']['ci95'][0]:+.3f}, {vs['gain']['ci95'][1]:+.3f}]" if vs else ""
        p = (f"{vs['wilcoxon_p']:.3g} / {vs['ttest_p']:.3g}" if vs and vs["wilcoxon_p"] is not None else "")
        n = "" if r["synthetic_used"] is None else f"{r['synthetic_used']:.0f}"
        if r.get("jobs_with_synthetic"):
            n += " ({} of {} jobs)".format(*r["jobs_with_synthetic"])
        print(f"| {r['fraction']:g} | {r['label']} | {cell} | {gain} | {p} | {n} |")
    gates = {g: gate_report(p.parent, g) for g, p in syn.items() if g != "none"}
    for g, rep in gates.items():
        print(f"\n{g} gate: kept {rep['kept']}, dropped {rep['dropped']}, mean WER {rep['mean_wer']}")
    folder = bench / args.corpus
    (folder / "synthetic_gain.json").write_text(json.dumps({"rows": rows, "gates": gates, "args": vars(args)}, indent=1))
    curve(rows, folder / "synthetic_gain.png", f"{args.corpus}: UA against real data, synthetic {setting}")
    print(f"\n(numbers: {folder / 'synthetic_gain.json'}; curve: {folder / 'synthetic_gain.png'})")


if __name__ == "__main__":
    main()
