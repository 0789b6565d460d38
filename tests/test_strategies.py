"""Every strategy trains the same head on tiny real + synthetic feature stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sercli import plugins as pl
from sercli.data import Examples
from sercli.errors import SercliError
from sercli.model import Head
from sercli.train import TrainConfig, Trainer
from test_train_eval import CLASSES, make_corpus

ALL = ("real-only", "mix", "adversarial", "transfer", "curriculum", "noise", "specaugment", "mixup", "speed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    real_path, syn_path = make_corpus(tmp_path_factory.mktemp("corpus"), n_speakers=3, n_synthetic=18)
    index = {c: i for i, c in enumerate(CLASSES)}
    real = [json.loads(line) for line in real_path.read_text().splitlines()]
    syn = [json.loads(line) for line in syn_path.read_text().splitlines()]
    train = Examples.build([r for r in real if r["speaker"] != "spk2"], index, 0)
    val = Examples.build([r for r in real if r["speaker"] == "spk2"], index, 0)
    return train, Examples.build(syn, index, 1), val


def trainer(**kw):
    return Trainer(TrainConfig(hidden=16, max_epochs=3, patience=2, batch_size=8, **kw), list(CLASSES))


def stages(t):
    return list(dict.fromkeys(h["stage"] for h in t.history.epochs))


def test_all_strategies_are_registered():
    assert set(ALL) <= set(pl.names("strategy"))


@pytest.mark.parametrize("name", ALL)
def test_strategy_trains_the_shared_head(name, data):
    real, syn, val = data
    t = trainer()
    model = pl.create("strategy", name).fit(t, real, syn, val)
    assert isinstance(model, Head) and model.config["hidden"] == 16
    assert 0.0 <= t.evaluate(model, val)[1]["UA"] <= 1.0
    assert t.history.epochs


def test_staged_strategies_log_their_stages(data):
    real, syn, val = data
    t = trainer()
    pl.create("strategy", "transfer").fit(t, real, syn, val)
    assert stages(t) == ["pre-train synthetic", "fine-tune real"]
    t = trainer()
    pl.create("strategy", "curriculum", {"stages": 2, "epochs_per_stage": 1, "order": "confidence"}).fit(t, real, syn, val)
    assert stages(t) == ["real", "stage 1/2", "stage 2/2"]
    assert [h["epoch"] for h in t.history.epochs] == [0, 0, 0]


def test_curriculum_adds_short_synthetic_utterances_first(data):
    real, syn, val = data
    seen = []

    class Spy(Trainer):
        def fit(self, model, train, val, **kw):
            seen.append([r["duration"] for r, d in zip(train.records, train.domains) if d == 1])
            return super().fit(model, train, val, **kw)

    spy = Spy(TrainConfig(hidden=8, max_epochs=1), list(CLASSES))
    pl.create("strategy", "curriculum", {"stages": 3, "ratio": 1.0}).fit(spy, real, syn, val)
    assert seen[0] == [] and len(seen[1]) < len(seen[2]) < len(seen[3]) == len(syn)
    assert max(seen[1]) <= min(d for d in seen[3] if d not in seen[1])  # the first stage is the shortest


def test_mix_ratio_and_missing_synthetic(data):
    real, syn, val = data
    t = trainer()
    mix = pl.create("strategy", "mix", {"ratio": 0.5})
    mix.fit(t, real, syn, val)
    with pytest.raises(SercliError, match="--synthetic"):
        pl.create("strategy", "adversarial").fit(trainer(), real, syn.subset([]), val)
    with pytest.raises(SercliError, match="Bad option"):
        pl.create("strategy", "mix", {"ratio": "-1"})


def test_adversarial_lambda_ramps_up():
    adv = pl.create("strategy", "adversarial", {"max_lambda": 0.5})
    values = [adv.lam(e, 10) for e in range(10)]
    assert values[0] == 0.0 and values == sorted(values) and values[-1] == pytest.approx(0.5, abs=1e-3)


def test_gradient_reversal_flips_the_gradient():
    from sercli_strategies.adversarial import _grad_reverse

    x = torch.ones(3, requires_grad=True)
    _grad_reverse().apply(x, 0.3).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.3))


def test_augmentations_keep_shapes_and_change_values():
    model = Head(1, 6, 3)
    x = torch.randn(4, 1, 10, 6)
    lengths = torch.tensor([10, 8, 5, 2])
    y = torch.tensor([0, 1, 2, 0])
    gen = torch.Generator().manual_seed(0)
    noisy, n_len = pl.create("strategy", "noise").augment(model, x, lengths, y, gen)
    assert noisy.shape == x.shape and not torch.equal(noisy, x) and torch.equal(n_len, lengths)
    masked, _ = pl.create("strategy", "specaugment", {"feature_width": 0.5}).augment(model, x, lengths, y, gen)
    assert masked.shape == x.shape and (masked == 0).sum() > (x == 0).sum()  # model.mean is 0 here
    stretched, s_len = pl.create("strategy", "speed", {"low": 0.5, "high": 0.5}).augment(model, x, lengths, y, gen)
    assert s_len.tolist() == [20, 16, 10, 4] and stretched.shape == (4, 1, 20, 6)
    emb, y2, lam = pl.create("strategy", "mixup").mix()(torch.randn(4, 16), y, gen)
    assert emb.shape == (4, 16) and sorted(y2.tolist()) == sorted(y.tolist()) and 0.5 <= lam <= 1


def test_speed_needs_frame_features(tmp_path):
    from sercli.features import FeatureStore

    store = FeatureStore(tmp_path / "s")
    store.init({"backbone": {"plugin": "toy"}, "pool": "mean", "level": "utterance", "layers": "all"})
    with store.writer() as w:
        w.add("a", np.zeros((1, 1, 4), dtype=np.float32))
    rec = {"id": "a", "emotion": "sad", "features": {"store": str(store.root), "key": "a"}}
    ex = Examples.build([rec], {"sad": 0}, 0)
    with pytest.raises(SercliError, match="--pool none"):
        pl.create("strategy", "speed").fit(trainer(), ex, ex.subset([]), ex)


@pytest.mark.parametrize("name,used", [("real-only", None), ("mix", 9), ("adversarial", 9), ("curriculum", 9),
                                       ("transfer", 18), ("noise", None)])
def test_strategies_note_the_synthetic_data_they_train_on(name, used, data):
    real, syn, val = data  # 18 real training utterances, 18 synthetic; ratio 0.5 picks 9
    t = trainer()
    pl.create("strategy", name).fit(t, real, syn, val)
    assert t.used.get("synthetic") == used


def test_a_schedule_fixes_the_epochs_of_each_fit_call(data):
    real, syn, val = data
    t = Trainer(TrainConfig(hidden=8, max_epochs=9, patience=1), list(CLASSES), schedule=[2, 3])
    pl.create("strategy", "transfer").fit(t, real, syn, val)
    assert [h["epoch"] for h in t.history.epochs] == [0, 1, 0, 1, 2]


def test_fit_hooks_reach_the_loop(data):
    from sercli.api import FitHooks

    real, _, val = data
    calls = []

    def extra_loss(model, extra, emb, batch, epoch):
        calls.append((tuple(emb.shape), len(batch), epoch))
        return extra(emb).sum() * 0

    t = trainer()
    extra = torch.nn.Linear(16, 1)
    t.fit(t.new_model(real), real, val, max_epochs=1, hooks=FitHooks(extra=extra, extra_loss=extra_loss))
    assert calls and all(c[1] == 4 and c[2] == 0 and c[0][1] == 16 for c in calls)
