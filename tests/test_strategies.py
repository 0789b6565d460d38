"""Every strategy trains the same head on tiny real + synthetic feature stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sercli.core import plugins as pl
from sercli.learning.data import Examples
from sercli.core.errors import SercliError
from sercli.learning.model import HeadModule
from sercli.learning.train import TrainConfig, Trainer, build_head
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
    return Trainer(TrainConfig(head="mlp", head_options={"hidden": 16}, max_epochs=3, patience=2, batch_size=8, **kw), list(CLASSES))


def stages(t):
    return list(dict.fromkeys(h["stage"] for h in t.history.epochs))


def test_all_strategies_are_registered():
    assert set(ALL) <= set(pl.names("strategy"))


@pytest.mark.parametrize("name", ALL)
def test_strategy_trains_the_shared_head(name, data):
    real, syn, val = data
    t = trainer()
    model = pl.create("strategy", name).fit(t, real, syn, val)
    assert isinstance(model, HeadModule) and model.config["options"]["hidden"] == 16
    assert 0.0 <= t.evaluate(model, val)[1]["UA"] <= 1.0
    assert t.history.epochs


def test_staged_strategies_log_their_stages(data):
    real, syn, val = data
    t = trainer()
    pl.create("strategy", "transfer", {"ratio": "all"}).fit(t, real, syn, val)
    assert stages(t) == ["pre-train synthetic", "fine-tune real"]
    t = trainer()
    pl.create("strategy", "curriculum", {"stages": 2, "epochs_per_stage": 1, "order": "confidence", "ratio": 0.5}).fit(
        t, real, syn, val)
    assert stages(t) == ["real", "stage 1/2", "stage 2/2"]
    assert [h["epoch"] for h in t.history.epochs] == [0, 0, 0]


def test_curriculum_without_synthetic_data_trains_the_same_stages(data):
    """ratio 0 (the harm guard's baseline) gets the training budget of every other amount: the
    same stages, on the real data alone; a gain the guard measures is not one of more epochs."""
    real, syn, val = data
    t = trainer()
    pl.create("strategy", "curriculum", {"stages": 2, "epochs_per_stage": 1, "ratio": 0}).fit(t, real, syn, val)
    assert stages(t) == ["real", "stage 1/2 (real only)", "stage 2/2 (real only)"]
    assert t.used["synthetic"] == 0


def test_curriculum_adds_short_synthetic_utterances_first(data):
    real, syn, val = data
    seen = []

    class Spy(Trainer):
        def fit(self, model, train, val, **kw):
            seen.append([r["duration"] for r, d in zip(train.records, train.domains) if d == 1])
            return super().fit(model, train, val, **kw)

    spy = Spy(TrainConfig(head="mlp", head_options={"hidden": 8}, max_epochs=1), list(CLASSES))
    pl.create("strategy", "curriculum", {"stages": 3, "ratio": 1.0}).fit(spy, real, syn, val)
    assert spy.used["synthetic"] == len(syn)
    assert seen[0] == [] and len(seen[1]) < len(seen[2]) < len(seen[3]) == len(syn)
    assert max(seen[1]) <= min(d for d in seen[3] if d not in seen[1])  # the first stage is the shortest


def test_mix_trains_on_ratio_times_real_synthetic_utterances(data):
    real, syn, val = data
    for ratio in (0.5, 0.0):
        seen = []

        class Spy(Trainer):
            def fit(self, model, train, val, **kw):
                seen.append([r["id"] for r, d in zip(train.records, train.domains) if d == 1])
                return super().fit(model, train, val, **kw)

        spy = Spy(TrainConfig(head="mlp", head_options={"hidden": 8}, max_epochs=1), list(CLASSES))
        pl.create("strategy", "mix", {"ratio": ratio}).fit(spy, real, syn, val)
        want = round(ratio * len(real))
        assert len(seen) == 1 and len(seen[0]) == len(set(seen[0])) == want == spy.used["synthetic"]
        assert set(seen[0]) <= {r["id"] for r in syn.records}
    with pytest.raises(SercliError, match="--synthetic"):
        pl.create("strategy", "mix").fit(trainer(), real, syn.subset([]), val)
    with pytest.raises(SercliError, match="ratios"):
        pl.create("strategy", "mix", {"ratios": "0,-1"})
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
    model = build_head("mlp", {}, 1, 6, 3)
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
    from sercli.features.store import FeatureStore

    store = FeatureStore(tmp_path / "s")
    store.init({"backbone": {"plugin": "toy"}, "pool": "mean", "level": "utterance", "layers": "all"})
    with store.writer() as w:
        w.add("a", np.zeros((1, 1, 4), dtype=np.float32))
    rec = {"id": "a", "emotion": "sad", "features": {"store": str(store.root), "key": "a"}}
    ex = Examples.build([rec], {"sad": 0}, 0)
    with pytest.raises(SercliError, match="--pool none"):
        pl.create("strategy", "speed").fit(trainer(), ex, ex.subset([]), ex)


@pytest.mark.parametrize("name,options,used", [
    ("real-only", {}, 0), ("mix", {"ratio": 0.5}, 9), ("adversarial", {"ratio": 0.5}, 9),
    ("curriculum", {"ratio": 0.5}, 9), ("transfer", {"ratio": "all"}, 18), ("transfer", {"ratio": 0.5}, 9),
    ("mix", {"ratio": 0}, 0), ("transfer", {"ratio": 0}, 0), ("noise", {}, 0)])
def test_strategies_note_the_synthetic_data_they_train_on(name, options, used, data):
    real, syn, val = data  # 18 real training utterances, 18 synthetic; ratio 0.5 picks 9
    t = trainer()
    pl.create("strategy", name, options).fit(t, real, syn, val)
    assert t.used.get("synthetic") == used


def test_a_schedule_fixes_the_epochs_of_each_fit_call(data):
    real, syn, val = data
    t = Trainer(TrainConfig(head="mlp", head_options={"hidden": 8}, max_epochs=9, patience=1), list(CLASSES), schedule=[2, 3])
    pl.create("strategy", "transfer", {"ratio": "all"}).fit(t, real, syn, val)
    assert [h["epoch"] for h in t.history.epochs] == [0, 1, 0, 1, 2]


def test_restarts_continue_from_the_kept_weights_and_a_refit_replays_them(data):
    """--restarts N: N more early-stopped rounds after the first, each starting from the weights
    the round before kept (not a fresh head); the refit's schedule replays every round."""
    real, syn, val = data
    t = trainer(restarts=2)
    model = pl.create("strategy", "real-only").fit(t, real, syn, val)
    assert stages(t) == ["real", "real (restart 1)", "real (restart 2)"]
    assert len(t.best_epochs) == 3
    # a round's first epoch starts from the previous round's best: its loss is that of a trained
    # head, below the first round's first epoch (a fresh head)
    first = {h["stage"]: h["train_loss"] for h in reversed(t.history.epochs)}
    assert first["real (restart 1)"] < first["real"] and first["real (restart 2)"] < first["real"]
    refit = Trainer(t.cfg, t.labels, schedule=[e + 1 for e in t.best_epochs])
    pl.create("strategy", "real-only").fit(refit, real + val, syn, val)
    assert [sum(h["stage"] == s for h in refit.history.epochs) for s in stages(t)] == [e + 1 for e in t.best_epochs]
    assert isinstance(model, HeadModule)
    with pytest.raises(SercliError, match="--restarts"):
        TrainConfig(restarts=-1)


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


# -- synthetic data that carries what the real data lacks ---------------------------------------

def signal_data(root, *, helpful: bool = True, seed: int = 0):
    """(real, synthetic, val) utterance-level Examples: the real training utterances carry no
    emotion (features independent of the label, offset from the synthetic domain), the
    validation utterances and the synthetic ones do (the same class centres). With
    ``helpful=False`` the synthetic labels are rotated: they teach the wrong emotions."""
    from sercli.features.store import FeatureStore

    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "signal")
    store.init({"backbone": {"plugin": "toy"}, "pool": "mean", "level": "utterance", "layers": "all"})
    D, C = 8, len(CLASSES)
    centres = rng.normal(size=(C, D)) * 2.5
    offset = rng.normal(size=D) * 3  # the real domain sits elsewhere than the synthetic one
    parts = {"real": [], "syn": [], "val": []}
    with store.writer() as w:
        for part, n in (("real", 12), ("syn", 20), ("val", 10)):
            for i in range(n * C):
                c = i % C
                if part == "real":
                    x = offset + rng.normal(size=D) * 2.5  # no emotion in it
                elif part == "val":
                    x = offset + centres[c] + rng.normal(size=D)
                else:
                    x = centres[c] + rng.normal(size=D)
                label = (c + 1) % C if part == "syn" and not helpful else c
                key = f"{part}{i}"
                w.add(key, x.astype(np.float32)[None, None])
                parts[part].append({"id": key, "emotion": CLASSES[label], "speaker": f"{part}{i % 3}",
                                    "duration": 1 + float(rng.random()),
                                    "features": {"store": str(store.root), "key": key, "shape": [1, 1, D]}})
    index = {c: i for i, c in enumerate(CLASSES)}
    return (Examples.build(parts["real"], index, 0), Examples.build(parts["syn"], index, 1),
            Examples.build(parts["val"], index, 0))


def val_ua(t, model, val):
    return t.evaluate(model, val)[1]["UA"]


def strong():
    return Trainer(TrainConfig(head="mlp", head_options={"hidden": 32}, max_epochs=30, patience=8, batch_size=16), list(CLASSES))


FIXED = {"mix": {"ratio": 1}, "adversarial": {"ratio": 1}, "curriculum": {"ratio": 1, "stages": 2},
         "transfer": {"ratio": "all"}}


@pytest.mark.parametrize("name", list(FIXED))
def test_synthetic_signal_reaches_the_model(name, tmp_path, one_torch_thread):
    """A strategy that ignores the synthetic data, or its labels, learns nothing here."""
    real, syn, val = signal_data(tmp_path)
    t = strong()
    baseline = val_ua(t, pl.create("strategy", "real-only").fit(t, real, syn, val), val)
    t = strong()
    ua = val_ua(t, pl.create("strategy", name, FIXED[name]).fit(t, real, syn, val), val)
    assert ua > baseline + 0.25, (name, ua, baseline)
    assert t.used["synthetic"] == (len(syn) if name == "transfer" else len(real))


def scarce_data(root, pool: str, seed: int = 0):
    """(real, synthetic, val) utterance-level Examples where real data is scarce: 10 training
    speakers x 2 utterances per class, class centres buried in noise. The synthetic pool is
    either drawn from the real data's own distribution (``"same"``: more of the same speech,
    other speakers) or noise (``"noise"``: what noise audio gives an encoder, features close to
    one point far from speech, with random labels)."""
    from sercli.features.store import FeatureStore

    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "scarce")
    store.init({"backbone": {"plugin": "toy"}, "pool": "mean", "level": "utterance", "layers": "all"})
    D, C = 16, len(CLASSES)
    centres = rng.normal(size=(C, D))
    far = rng.normal(size=D) * 4
    parts = {"real": [], "syn": [], "val": []}
    with store.writer() as w:
        for part, speakers, per in (("real", 10, 2), ("syn", 10, 6), ("val", 2, 6)):
            for s in range(speakers):
                for c in range(C):
                    for k in range(per):
                        label, x = c, centres[c] + rng.normal(size=D) * 1.6
                        if part == "syn" and pool == "noise":
                            label, x = int(rng.integers(C)), far + rng.normal(size=D) * 0.5
                        key = f"{part}-{s}-{c}-{k}"
                        w.add(key, x.astype(np.float32)[None, None])
                        parts[part].append({"id": key, "emotion": CLASSES[label], "speaker": f"{part}{s}",
                                            "duration": 1.0,
                                            "features": {"store": str(store.root), "key": key, "shape": [1, 1, D]}})
    index = {c: i for i, c in enumerate(CLASSES)}
    return (Examples.build(parts["real"], index, 0), Examples.build(parts["syn"], index, 1),
            Examples.build(parts["val"], index, 0))


def guarded():
    return Trainer(TrainConfig(head="linear", max_epochs=15, patience=4, batch_size=16), list(CLASSES))


def test_the_harm_guard_takes_a_pool_like_the_real_data_and_refuses_noise(tmp_path, one_torch_thread):
    name = "mix"
    real, same, val = scarce_data(tmp_path / "same", "same")
    strategy = pl.create("strategy", name, {"ratios": "0,1"})  # ratio=auto by default
    t = guarded()
    strategy.fit(t, real, same, val)
    chosen = strategy.chosen
    assert chosen["ratio"] not in (0, 0.0) and t.used["synthetic"] > 0, chosen
    assert chosen["inner"]["folds"] == 5 and "speaker" in chosen["inner"]["how"]
    assert chosen["gain"][str(chosen["ratio"])]["lower_bound"] > 0
    assert all(len(v) == 5 for v in chosen["inner"]["UA"].values())
    assert strategy.provenance()["chosen"] == chosen
    # the given trainer holds the chosen training alone (its curve, a refit's schedule)
    assert all("ratio=0" not in h["stage"] for h in t.history.epochs)

    _, noise, _ = scarce_data(tmp_path / "noise", "noise")
    strategy = pl.create("strategy", name, {"ratios": "0,1"})
    t = guarded()
    strategy.fit(t, real, noise, val)
    assert strategy.chosen["ratio"] in (0, 0.0) and t.used["synthetic"] == 0, strategy.chosen
    assert all(g["lower_bound"] <= 0 for g in strategy.chosen["gain"].values())

    # a refit keeps the choice made by the guard
    refit = Trainer(t.cfg, t.labels, schedule=[e + 1 for e in t.best_epochs])
    strategy.fit(refit, real, noise, val)
    assert refit.used["synthetic"] == 0 and len(refit.best_epochs) == len(t.best_epochs)


def test_the_harm_guard_needs_its_lower_bound_above_zero_not_a_better_mean(tmp_path, one_torch_thread):
    """One inner fold's luck is not evidence: a candidate whose mean gain is positive but whose
    gains scatter around zero is refused (the one-split choice took it)."""
    from sercli_strategies import amount

    real, same, val = scarce_data(tmp_path, "same")
    strategy = pl.create("strategy", "mix", {"ratios": "0,1"})
    noisy = iter([0.5, 0.9, 0.5, 0.3, 0.5, 0.6, 0.5, 0.45, 0.5, 0.55])  # (ratio 0, ratio 1) per inner fold
    original = amount.val_ua
    amount.val_ua = lambda trainer, model, data: next(noisy)
    try:
        choice = amount.guard(strategy, guarded(), real, same, val, lambda tr, part, pool, r: None)
    finally:
        amount.val_ua = original
    gain = choice["gain"]["1.0"]
    assert gain["mean"] > 0 and gain["lower_bound"] < 0 and choice["ratio"] == 0.0


def test_inner_folds_keep_derived_speech_beside_its_source(tmp_path):
    from sercli.api import derived_only_from

    real, same, _ = scarce_data(tmp_path, "same")
    derived = Examples([{**r, "id": f"d-{r['id']}", "derived_from": {"id": r["id"], "speaker": r["speaker"]}}
                        for r in real.records], real.labels, [1] * len(real))
    part = real.subset(range(len(real) // 2))
    kept = derived_only_from(part, derived + same)
    sources = {r["derived_from"]["id"] for r in kept.records if r.get("derived_from")}
    assert sources == {r["id"] for r in part.records}
    assert len(kept) == len(part) + len(same)  # speech derived from nothing stays


def test_transfer_standardises_each_stage_with_its_own_data(tmp_path, one_torch_thread):
    from sercli.learning.data import layer_stats

    real, syn, val = signal_data(tmp_path)
    seen = []

    class Spy(Trainer):
        def fit(self, model, train, val, **kw):
            seen.append((model.mean.clone().numpy(), model.std.clone().numpy(), set(train.domains)))
            return super().fit(model, train, val, **kw)

    t = Spy(TrainConfig(head="mlp", head_options={"hidden": 16}, max_epochs=4, patience=2), list(CLASSES))
    model = pl.create("strategy", "transfer", {"ratio": "all"}).fit(t, real, syn, val)
    (m1, s1, d1), (m2, s2, d2) = seen
    ms, ss = layer_stats(syn, seed=0)
    mr, sr = layer_stats(real, seed=0)
    assert d1 == {1} and d2 == {0}
    assert np.allclose(m1, ms) and np.allclose(s1, ss) and np.allclose(m2, mr) and np.allclose(s2, sr)
    assert np.allclose(model.mean.numpy(), mr)  # the model is used on real speech
    # the synthetic stage starts where a fresh head does (about ln C), not far above it
    first = t.history.epochs[0]
    assert first["stage"] == "pre-train synthetic" and first["train_loss"] < 2 * np.log(len(CLASSES))


def test_adversarial_changes_the_embedding_and_refuses_a_head_without_one(data):
    """The reversed domain gradient must reach weights: with the same seed, adversarial and
    mix at the same ratio train different heads; a head whose embedding is its input (linear,
    concatenated layers) would make adversarial `mix` under another name, so it is refused."""
    import torch

    real, syn, val = data
    heads = {}
    for name in ("mix", "adversarial"):
        heads[name] = pl.create("strategy", name, {"ratio": 1}).fit(trainer(), real, syn, val)
    assert not all(torch.equal(a, b) for a, b in zip(heads["mix"].state_dict().values(),
                                                       heads["adversarial"].state_dict().values()))
    flat = Trainer(TrainConfig(head="linear", max_epochs=2, patience=1, batch_size=8), list(CLASSES))
    with pytest.raises(SercliError, match="--head mlp"):
        pl.create("strategy", "adversarial", {"ratio": 1}).fit(flat, real, syn, val)
