"""train -> eval -> predict on tiny feature stores: protocols, reproducibility, refusals, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import write_tone
from sercli.cli import app
from sercli.core.errors import SercliError
from sercli.features.store import FeatureStore

CLASSES = ("angry", "happy", "sad")
FAST = ["--epochs", "4", "--patience", "2", "--head", "mlp", "-O", "hidden=16", "--batch-size", "16"]


def make_corpus(root: Path, n_speakers: int = 5, per_class: int = 3, n_synthetic: int = 12, seed: int = 0):
    """Real and synthetic frame-feature records in one store; classes are separable.

    Returns (real.jsonl, synthetic.jsonl). Synthetic sentence 0 repeats a real transcript.
    """
    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "store")
    store.init({"backbone": {"plugin": "toy", "options": {}}, "layers": "all", "layer_names": ["0"],
                "pool": "none", "level": "frame", "dtype": "float32", "sample_rate": 16000})
    centers = rng.normal(size=(len(CLASSES), 6)) * 2
    real, synthetic = [], []

    def add(writer, key, c, **fields):
        frames = int(rng.integers(3, 9))
        x = (centers[c] + rng.normal(size=(frames, 6))).astype(np.float32)[None]
        writer.add(key, x)
        return {"id": key, "emotion": CLASSES[c], "duration": frames / 100,
                "features": {"store": str(store.root.resolve()), "key": key, "shape": list(x.shape)}, **fields}

    with store.writer() as w:
        for s in range(n_speakers):
            for c in range(len(CLASSES)):
                for k in range(per_class):
                    real.append(add(w, f"s{s}-{c}-{k}", c, speaker=f"spk{s}", session=f"ses{s // 2}",
                                    transcript=f"Sentence number {k}.", source="real"))
        for i in range(n_synthetic):
            text = "sentence NUMBER 0" if i == 0 else f"a synthetic line {i}"
            synthetic.append(add(w, f"syn{i}", i % len(CLASSES), speaker=f"voice{i % 2}", text=text, source="synthetic"))
    paths = root / "real.jsonl", root / "synthetic.jsonl"
    for path, recs in zip(paths, (real, synthetic)):
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return paths


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path)


def test_cv_run_layout_and_aggregate(tmp_path, corpus):
    real, _ = corpus
    out = tmp_path / "run"
    invoke("train", real, "--cv", "loso", "--seeds", "0,1", "--out", out, *FAST)
    manifest = json.loads((out / "run.json").read_text())
    assert [j["name"] for j in manifest["jobs"]][:2] == ["fold-00-seed-0", "fold-00-seed-1"]
    assert len(manifest["jobs"]) == 10 and manifest["inputs"][str(real)]  # input hash kept
    job = out / "fold-03-seed-1"
    config = json.loads((job / "config.json").read_text())
    # the test speaker is neither a training nor a validation speaker
    assert config["speakers"]["test"] == ["spk3"]
    assert "spk3" not in config["speakers"]["train"] + config["speakers"]["val"]
    assert not set(config["speakers"]["train"]) & set(config["speakers"]["val"])
    for name in ("model.safetensors", "history.json", "curves.png", "test.jsonl", "predictions.jsonl"):
        assert (job / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_folds"] == 5 and metrics["seeds"] == [0, 1]
    assert metrics["pooled"]["n"] == 2 * 45 and set(metrics["pooled"]["recall"]) == set(CLASSES)
    assert metrics["UA"]["ci95"][0] <= metrics["UA"]["mean"] <= metrics["UA"]["ci95"][1]
    assert (out / "confusion.png").stat().st_size > 0

    result = invoke("eval", out)  # `eval` on a CV run evaluates every fold again
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["UA"] == metrics["UA"] and again["pooled"] == metrics["pooled"]


def test_same_command_same_numbers(tmp_path, corpus):
    real, synthetic = corpus
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        invoke("train", real, "--synthetic", synthetic, "--strategy", "adversarial", "--cv", "kfold:2",
               "--seeds", "3", "--out", out, *FAST)
    first, second = (json.loads((o / "metrics.json").read_text()) for o in outs)
    assert first == second
    hist = [(o / "fold-01-seed-3" / "history.json").read_text() for o in outs]
    assert hist[0] == hist[1]


def test_training_on_test_speakers_is_refused(tmp_path, corpus):
    real, _ = corpus
    # given splits in which spk0 is both in the training and in the test part
    recs = [json.loads(line) for line in real.read_text().splitlines()]
    for i, r in enumerate(recs):
        r["split"] = "test" if i % 4 == 0 else "train"
    split = tmp_path / "split.jsonl"
    split.write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(SercliError, match="allow-speaker-overlap"):
        invoke("train", split, "--cv", "field:split", "--out", tmp_path / "x", *FAST)
    other = tmp_path / "other-ids.jsonl"  # the same speakers under other ids (the same ids are duplicates)
    other.write_text("".join(json.dumps({**r, "id": "t-" + r["id"]}) + "\n" for r in recs))
    with pytest.raises(SercliError, match="allow-speaker-overlap"):
        invoke("train", real, "--test", other, "--out", tmp_path / "y", *FAST)
    invoke("train", split, "--cv", "field:split", "--allow-speaker-overlap", "--out", tmp_path / "z", *FAST)
    assert json.loads((tmp_path / "z" / "metrics.json").read_text())["pooled"]["n"] == sum(r["split"] == "test" for r in recs)

    # and evaluating a model on the speakers it was trained on
    invoke("train", real, "--test-speakers", "spk4", "--out", tmp_path / "h", *FAST)
    with pytest.raises(SercliError, match="allow-speaker-overlap"):
        invoke("eval", tmp_path / "h", real)
    invoke("eval", tmp_path / "h", real, "--allow-speaker-overlap")


def test_leaking_synthetic_text_is_dropped(tmp_path, corpus):
    real, synthetic = corpus
    out = tmp_path / "run"
    invoke("train", real, "--synthetic", synthetic, "--strategy", "mix", "-O", "ratio=1.0",
           "--test-speakers", "spk0", "--out", out, *FAST)
    config = json.loads((out / "config.json").read_text())
    assert config["counts"]["synthetic_dropped_leak"] == 1
    assert config["counts"]["synthetic"] == 11
    assert [json.loads(line)["id"] for line in (out / "leaked.jsonl").read_text().splitlines()] == ["syn0"]


def test_sweep_and_compare(tmp_path, corpus):
    real, synthetic = corpus
    out = tmp_path / "sweep"
    invoke("train", real, "--synthetic", synthetic, "--strategy", "mix", "--sweep", "ratio=0.5,1.0",
           "--cv", "kfold:2", "--out", out, *FAST)
    assert json.loads((out / "sweep.json").read_text())["runs"] == ["ratio=0.5", "ratio=1.0"]
    invoke("train", real, "--cv", "kfold:2", "--out", tmp_path / "base", *FAST)
    result = invoke("eval", "--compare", tmp_path / "base", out)
    rows = json.loads(result.stdout.strip().splitlines()[-1])["runs"]
    assert [r["strategy"] for r in rows] == ["real-only", "mix (ratio=0.5)", "mix (ratio=1.0)"]  # ratio=auto is the default
    assert rows[1]["vs_first"]["n_folds"] == 2 and "wilcoxon_p" in rows[1]["vs_first"]


def test_compare_says_when_the_head_differs(tmp_path, corpus):
    """A strategy run with another head than the baseline: ΔUA mixes the two changes, and the
    comparison says so (in the row, on stderr and under the table); the same head says nothing."""
    real, synthetic = corpus
    common = ["--cv", "kfold:2", "--epochs", "3", "--patience", "2", "--batch-size", "16"]
    invoke("train", real, "--out", tmp_path / "linear", "--head", "linear", *common)
    invoke("train", real, "--out", tmp_path / "mlp", "--head", "mlp", "-O", "hidden=8", *common)
    invoke("train", real, "--synthetic", synthetic, "--strategy", "mix", "-O", "ratio=1", "--out", tmp_path / "mix",
           "--head", "linear", *common)
    result = invoke("eval", "--compare", tmp_path / "linear", tmp_path / "mlp", tmp_path / "mix")
    rows = json.loads(result.stdout.strip().splitlines()[-1])["runs"]
    assert rows[1]["differs_from_first"] == ["head"]
    assert "differs_from_first" not in rows[2]
    assert "mlp differs from the first run in head" in result.stderr
    assert "mix differs" not in result.stderr


def test_tune_chooses_by_validation(tmp_path, corpus):
    real, _ = corpus
    out = tmp_path / "run"
    invoke("train", real, "--test-speakers", "spk1", "--head", "mlp", "--tune", "hidden=8,16", "--tune", "lr=0.01,0.001",
           "--out", out, "--epochs", "3", "--patience", "2")
    config = json.loads((out / "config.json").read_text())
    trials = config["tuning"]
    assert len(trials) == 4
    best = max(trials, key=lambda t: t["val_UA"])  # first best wins ties
    assert (config["train"]["head_options"]["hidden"], config["train"]["lr"]) == (best["hidden"], best["lr"])
    assert config["head"]["options"]["hidden"] == best["hidden"]


def test_predict_extracts_like_training(tmp_path):
    """Audio in: features made as the model's store made them; same probabilities as from the store."""
    audio = []
    for c, emo in enumerate(CLASSES):
        for k in range(4):
            path = write_tone(tmp_path / "wav" / f"{emo}{k}.wav", seconds=0.3, freq=200 * (c + 1) + 15 * k)
            audio.append({"id": f"{emo}{k}", "audio": str(path), "emotion": emo, "speaker": f"s{k}"})
    manifest = tmp_path / "audio.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in audio))
    feats = tmp_path / "feats.jsonl"
    invoke("extract", manifest, "--backbone", "fbank", "-O", "n_mels=16", "--pool", "none", "--workers", "0",
           "--store", tmp_path / "store", "-o", feats)
    run = tmp_path / "run"
    invoke("train", feats, "--out", run, "--val-speakers", "s0", *FAST)
    from_store = [json.loads(line) for line in invoke("predict", run, feats).stdout.splitlines()]
    from_audio = [json.loads(line) for line in invoke("predict", run, *[a["audio"] for a in audio]).stdout.splitlines()]
    assert len(from_store) == len(from_audio) == 12
    for s, a in zip(from_store, from_audio):
        assert s["predicted"] == a["predicted"]
        assert s["probabilities"] == pytest.approx(a["probabilities"], abs=1e-5)
        assert "features" not in s


def test_refit_and_head_variants(tmp_path, corpus):
    real, _ = corpus
    out = tmp_path / "run"
    invoke("train", real, "--test-speakers", "spk1", "--refit", "--head", "mlp", "-O", "pool=mean+std", "-O", "hidden=0",
           "--out", out, "--epochs", "3", "--patience", "3")
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["refit"] and config["head"]["options"] == {"pool": "mean+std", "hidden": 0, "dropout": 0.2}
    stages = [h["stage"] for h in json.loads((out / "history.json").read_text())]
    assert stages[0] == "real" and stages[-1] == "refit real" and len(stages) <= 6
    with pytest.raises(SercliError, match="pool"):
        invoke("train", real, "-O", "pool=max", "--out", tmp_path / "bad")
