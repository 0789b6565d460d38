"""Heads as plugins: every built-in head learns an easy task, a third-party head is chosen by
--head, -O goes to the head or the strategy, runs reload (old ones too), and a frame-level head
refuses utterance features."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from pydantic import Field

from sercli.core import plugins as pl
from sercli.base import Head, Options
from sercli.commands.train import _route_options
from sercli.learning.data import Examples
from sercli.core.errors import SercliError
from sercli.learning.model import probabilities
from sercli.features.store import FeatureStore
from sercli.hookspecs import hookimpl
from sercli.learning.train import TrainConfig, Trainer, load_model, save_model
from sercli.learning.heads import check_frames
from test_train_eval import invoke

CLASSES = ("angry", "happy", "sad")
CHANCE = 1 / len(CLASSES)
LAYERS, DIM = 3, 8
FAST = ["--epochs", "8", "--patience", "4", "--batch-size", "16"]


def write_features(root: Path, frames: tuple[int, int] | None, n_speakers: int = 4, per_class: int = 5,
                   seed: int = 0) -> Path:
    """Feature records (LAYERS x T x DIM) in a real FeatureStore: each class has its own centre in
    every layer, each speaker an offset, each frame noise. ``frames=None``: utterance features
    (T == 1, as `extract --pool mean` writes); else T drawn in [low, high)."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "store")
    store.init({"backbone": {"plugin": "toy", "options": {}}, "layers": "all",
                "layer_names": [str(i) for i in range(LAYERS)], "pool": "none" if frames else "mean",
                "level": "frame" if frames else "utterance", "dtype": "float32", "sample_rate": 16000})
    centres = rng.normal(size=(len(CLASSES), LAYERS, 1, DIM)) * 1.5
    records = []
    with store.writer() as w:
        for s in range(n_speakers):
            offset = rng.normal(size=(LAYERS, 1, DIM)) * 0.3
            for c, emotion in enumerate(CLASSES):
                for k in range(per_class):
                    t = int(rng.integers(*frames)) if frames else 1
                    x = (centres[c] + offset + rng.normal(size=(LAYERS, t, DIM))).astype(np.float32)
                    key = f"s{s}-{c}-{k}"
                    w.add(key, x)
                    records.append({"id": key, "emotion": emotion, "speaker": f"spk{s}",
                                    "features": {"store": str(store.root.resolve()), "key": key,
                                                 "shape": list(x.shape)}})
    path = root / "feats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    return write_features(tmp_path_factory.mktemp("frames"), frames=(3, 12))


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> Path:
    return write_features(tmp_path_factory.mktemp("utterances"), frames=None)


def builtin_heads() -> list[str]:
    return pl.registry().infos["heads"].registered["head"]


def split(path: Path) -> tuple[Examples, Examples, Examples]:
    index = {c: i for i, c in enumerate(CLASSES)}
    recs = read(path)
    part = lambda spk: Examples.build([r for r in recs if r["speaker"] in spk], index, 0)  # noqa: E731
    return part({"spk0", "spk1"}), part({"spk2"}), part({"spk3"})


# -- a third-party head, registered in-process as a plugin would be ------------------------------

class Centroid(Head):
    """The mean of the last layer into a linear layer; ``ratio`` is a strategy's option name too."""

    name = "test-centroid"
    description = "A third-party head (test)."

    class Options(Options):
        scale: float = Field(1.0, gt=0)
        ratio: float = 1.0

    def build(self, num_layers, dim, num_classes):
        from torch import nn

        from sercli.api import HeadModule

        scale = self.options.scale

        class Module(HeadModule):
            def __init__(self):
                super().__init__(num_layers, dim, num_classes)
                self.embed_dim = dim
                self.classifier = nn.Linear(dim, num_classes)

            def embed(self, x, lengths):
                return scale * self.stats_pool(self.standardise(x)[:, -1], lengths)

        return Module()


@pytest.fixture
def third_party():
    module = types.ModuleType("third_party_heads")

    @hookimpl
    def register_heads(register):
        register(Centroid)

    module.register_heads = register_heads
    pl.reset()
    pl.registry().register_module(module, "third-party-heads")
    yield Centroid.name
    pl.reset()


# -- every head learns ----------------------------------------------------------------------------

def test_the_built_in_heads_are_registered():
    assert {"mlp", "linear", "attentive", "cnn"} <= set(builtin_heads())
    for name in builtin_heads():
        head = pl.create("head", name)
        assert head.description and isinstance(head.frame_level, bool)
        for option, spec in head.search_space().items():  # only real options, in a form --search reads
            assert option in head.Options.model_fields, (name, option)
            assert isinstance(spec, list) or (isinstance(spec, tuple) and spec[2] in ("log", "linear"))


@pytest.mark.parametrize("name", ["mlp", "linear", "attentive", "cnn"])
def test_each_head_beats_chance_and_reloads(name, frames, tmp_path):
    train, val, test = split(frames)
    trainer = Trainer(TrainConfig(head=name, max_epochs=30, patience=8, batch_size=8), list(CLASSES))
    model = trainer.fit(trainer.new_model(train), train, val)
    assert model.config["name"] == name and model.config["options"] == trainer.cfg.head_options
    assert model.embed_dim == model.embed(*_batch(test)).shape[1]
    ua = trainer.evaluate(model, test)[1]["UA"]
    assert ua >= 2 * CHANCE, f"{name}: UA {ua:.3f} on an easy task"

    config = {"labels": list(CLASSES), "features": {}, "train": {}, "speakers": {}, "strategy": {}}
    save_model(model, tmp_path / "job", config)
    loaded, saved = load_model(tmp_path / "job")
    assert type(loaded) is type(model) and saved["head"] == model.config
    np.testing.assert_array_equal(probabilities(loaded, test, 4), probabilities(model, test, 4))
    # padding never changes an utterance's output: other batches, the same probabilities
    np.testing.assert_allclose(probabilities(loaded, test, 1), probabilities(model, test, 7), atol=1e-6)


def _batch(data: Examples):
    from sercli.learning.data import collate

    x, lengths, _, _ = collate(data, list(range(len(data))))
    return x, lengths


def test_linear_concat_reads_every_layer(utterances):
    """layers=concat: one weight per layer and dimension (logistic regression on all layers)."""
    train, val, test = split(utterances)
    trainer = Trainer(TrainConfig(head="linear", max_epochs=30, patience=8), list(CLASSES))
    model = trainer.fit(trainer.new_model(train), train, val)
    assert model.classifier[-1].weight.shape == (len(CLASSES), LAYERS * DIM) and model.layer_weights() is None
    assert trainer.evaluate(model, test)[1]["UA"] >= 2 * CHANCE
    weighted = Trainer(TrainConfig(head="linear", head_options={"layers": "weighted"}), list(CLASSES))
    assert weighted.new_model(train).classifier[-1].weight.shape == (len(CLASSES), DIM)


# -- the command line ------------------------------------------------------------------------------

def test_head_and_options_through_train_eval_predict(frames, tmp_path):
    run = tmp_path / "run"
    invoke("train", frames, "--head", "attentive", "-O", "hidden=16", "-O", "head.dropout=0.1",
           "--cv", "loso", "--out", run, *FAST)
    job = run / "fold-00-seed-0"
    config = json.loads((job / "config.json").read_text())
    assert config["head"]["name"] == "attentive" and config["head"]["options"]["hidden"] == 16
    assert config["train"]["head"] == "attentive" and config["train"]["head_options"] == config["head"]["options"]
    assert json.loads((run / "run.json").read_text())["train"]["head_options"]["dropout"] == 0.1
    # predict reproduces the probabilities eval wrote for the job's test part
    test = job / "test.jsonl"
    predicted = [json.loads(line) for line in invoke("predict", job, test).stdout.splitlines()]
    evaluated = read(job / "predictions.jsonl")
    assert [p["id"] for p in predicted] == [e["id"] for e in evaluated]
    for p, e in zip(predicted, evaluated):
        assert p["probabilities"] == pytest.approx(e["probabilities"], abs=1e-6)


def test_options_go_to_the_head_or_the_strategy(third_party):
    assert _route_options(["hidden=8", "ratio=0.5"], "mlp", "mix") == ({"hidden": "8"}, {"ratio": "0.5"})
    assert _route_options(["head.ratio=2", "strategy.ratio=0.5", "scale=3"], third_party, "mix") == (
        {"ratio": "2", "scale": "3"}, {"ratio": "0.5"})
    with pytest.raises(SercliError, match=r"use head\.ratio or strategy\.ratio"):
        _route_options(["ratio=0.5"], third_party, "mix")
    with pytest.raises(SercliError, match="no such option") as err:
        _route_options(["nope=1"], "mlp", "mix")
    assert "hidden" in str(err.value) and "ratio" in str(err.value)  # both models' fields listed


def test_a_third_party_head_is_chosen_by_name(third_party, frames, tmp_path):
    real = tmp_path / "real.jsonl"
    synthetic = tmp_path / "synthetic.jsonl"
    recs = read(frames)
    real.write_text("".join(json.dumps(r) + "\n" for r in recs if r["speaker"] != "spk3"))
    synthetic.write_text("".join(json.dumps({**r, "source": "synthetic"}) + "\n"
                                 for r in recs if r["speaker"] == "spk3"))
    run = tmp_path / "run"
    invoke("train", real, "--synthetic", synthetic, "--strategy", "mix", "--head", third_party,
           "-O", "scale=2", "-O", "head.ratio=3", "-O", "strategy.ratio=0.5", "--test-speakers", "spk0",
           "--out", run, *FAST)
    config = json.loads((run / "config.json").read_text())
    assert config["head"]["name"] == third_party and config["head"]["options"] == {"scale": 2.0, "ratio": 3.0}
    assert config["strategy"]["options"]["ratio"] == 0.5
    model, _ = load_model(run)
    assert type(model).__qualname__.startswith("Centroid.build")
    with pytest.raises(SercliError, match="Bad option for head"):
        invoke("train", real, "--head", third_party, "-O", "head.scale=-1", "--out", tmp_path / "bad", *FAST)


def test_tune_takes_the_head_options(frames, tmp_path):
    run = tmp_path / "run"
    invoke("train", frames, "--head", "linear", "--tune", "layers=concat,weighted", "--tune", "pool=mean,mean+std",
           "--test-speakers", "spk3", "--out", run, *FAST)
    config = json.loads((run / "config.json").read_text())
    best = max(config["tuning"], key=lambda t: t["val_UA"])  # the first best wins ties
    assert len(config["tuning"]) == 4
    chosen = {k: config["head"]["options"][k] for k in ("layers", "pool")}
    assert chosen == {"layers": best["layers"], "pool": best["pool"]}
    with pytest.raises(SercliError, match="pool"):
        invoke("train", frames, "--tune", "pool=mean,max", "--out", tmp_path / "bad", *FAST)
    with pytest.raises(SercliError, match="not tunable.*hidden"):
        invoke("train", frames, "--head", "mlp", "--tune", "layers=concat", "--out", tmp_path / "bad", *FAST)  # linear's


def test_a_frame_level_head_refuses_utterance_features(utterances, frames, tmp_path):
    frame_level = [n for n in builtin_heads() if pl.get_class("head", n).frame_level]
    assert {"attentive", "cnn"} <= set(frame_level)
    for name in frame_level:
        with pytest.raises(SercliError, match="--pool none"):
            invoke("train", utterances, "--head", name, "--out", tmp_path / name, *FAST)
        check_frames(name, read(frames))  # frame features: fine
    check_frames("mlp", read(utterances))
    assert not (tmp_path / "attentive").exists()


def test_an_old_run_loads_as_the_mlp_head(frames, tmp_path):
    run = tmp_path / "run"
    invoke("train", frames, "--head", "mlp", "-O", "hidden=8", "-O", "pool=mean+std", "--test-speakers", "spk3",
           "--out", run, *FAST)
    model, _ = load_model(run)
    index = {c: i for i, c in enumerate(CLASSES)}
    test = Examples.build(read(run / "test.jsonl"), index, 0)
    before = probabilities(model, test, 8)
    path = run / "config.json"
    config = json.loads(path.read_text())
    head = config["head"]
    # what sercli wrote before heads were plugins
    config["head"] = {"num_layers": head["num_layers"], "dim": head["dim"], "num_classes": head["num_classes"],
                      **head["options"]}
    path.write_text(json.dumps(config))
    old, _ = load_model(run)
    assert old.config["name"] == "mlp" and old.config["options"] == head["options"]
    np.testing.assert_array_equal(probabilities(old, test, 8), before)
