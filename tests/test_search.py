"""Choosing a recipe inside the fold (`--search N`, `--tune`): optuna on the training and
validation parts only, reproducible with a seed, and the chosen parameters are the ones the
job's model is trained with."""

from __future__ import annotations

import json
import math

import pytest

from sercli.core.errors import SercliError
from sercli.learning.search import choose
from test_train_eval import invoke, make_corpus

ARGS = ["--epochs", "3", "--patience", "2", "--batch-size", "16"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def _config(run) -> dict:
    return json.loads((run / "config.json").read_text())


def test_choose_is_seeded_and_keeps_the_first_best_trial():
    """The study's machinery on a known objective (validation UA peaks at lr = 1e-3)."""
    from sercli.learning.train import TrainConfig

    def fit(cfg):
        score = round(1 - abs(math.log10(cfg.lr) + 3) / 2, 2)
        return score, {"val_loss": 1 - score}, ("kept", cfg.lr)

    space = {"lr": (1e-4, 1e-2, "log"), "hidden": [8, 16]}
    runs = [choose(TrainConfig(head="mlp"), fit, n_trials=6, search_space=space, seed=s) for s in (4, 4, 5)]
    first, again, other = runs
    assert first.params == again.params and first.trials == again.trials  # same seed, same study
    assert [t["lr"] for t in other.trials] != [t["lr"] for t in first.trials]  # another seed samples elsewhere
    best = max(first.trials, key=lambda t: t["val_UA"])  # max() keeps the first of equal scores
    assert first.params == {"lr": best["lr"], "hidden": best["hidden"]}
    assert first.cfg.lr == best["lr"] and first.cfg.head_options["hidden"] == best["hidden"]
    assert first.kept == ("kept", best["lr"]) and first.method["chosen"] == first.params
    # a grid tries every combination once
    grid = choose(TrainConfig(head="mlp"), fit, grid={"lr": [1e-3, 1e-2], "hidden": [8, 16]}, seed=0)
    assert sorted((t["lr"], t["hidden"]) for t in grid.trials) == [(1e-3, 8), (1e-3, 16), (1e-2, 8), (1e-2, 16)]
    assert grid.params["lr"] == 1e-3 and grid.method["sampler"] == "grid"
    with pytest.raises(SercliError, match="either --search N or --tune"):
        choose(TrainConfig(head="mlp"), fit, grid={"lr": [1e-3]}, n_trials=2)


def test_search_never_sees_the_test_fold(tmp_path, corpus, monkeypatch):
    """Every Examples the trainer is given during the search (training, validation, statistics)
    holds no record of the test speakers."""
    from sercli.learning.train import Trainer

    seen: list[set[str]] = []
    for name in ("fit", "new_model", "evaluate"):
        original = getattr(Trainer, name)

        def spy(self, model_or_data, *args, _original=original, **kwargs):
            parts = [model_or_data, *args]
            for part in parts:
                if hasattr(part, "records"):
                    seen.append({r["id"] for r in part.records})
            return _original(self, model_or_data, *args, **kwargs)

        monkeypatch.setattr(Trainer, name, spy)
    real, _ = corpus
    run = tmp_path / "run"
    invoke("train", real, "--test-speakers", "spk2", "--search", "3", "--refit", "--out", run, *ARGS)
    test_ids = {json.loads(line)["id"] for line in (run / "test.jsonl").read_text().splitlines()}
    assert test_ids and all(i.startswith("s2-") for i in test_ids)
    assert len(seen) > 3 * 2 and all(not (ids & test_ids) for ids in seen)
    assert len(_config(run)["tuning"]) == 3


def test_search_is_reproducible_and_its_choice_trains_the_job(tmp_path, corpus):
    real, _ = corpus
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        invoke("train", real, "--cv", "kfold:2", "--search", "4", "--head", "mlp", "--out", run, *ARGS)
    for fold in ("fold-00-seed-0", "fold-01-seed-0"):
        first, second = (_config(run / fold) for run in runs)
        assert first["search"] == second["search"] and first["tuning"] == second["tuning"]
        search, trials = first["search"], first["tuning"]
        assert search["sampler"] == "tpe" and search["n_trials"] == len(trials) == 4
        assert {"lr", "weight_decay"} <= set(search["space"]) and "hidden" in search["space"]
        best = max(trials, key=lambda t: t["val_UA"])
        chosen = search["chosen"]
        assert chosen == {k: best[k] for k in chosen}
        # the job's model is the chosen trial's: its recipe, its head, its validation score
        assert first["train"]["lr"] == chosen["lr"] and first["train"]["weight_decay"] == chosen["weight_decay"]
        head_keys = set(chosen) - {"lr", "weight_decay"}
        assert {k: first["head"]["options"][k] for k in head_keys} == {k: chosen[k] for k in head_keys}
        assert first["val_metrics"]["UA"] == best["val_UA"]
    # the model reloads with the chosen head (its weights have the chosen shapes)
    from sercli.learning.train import load_model

    model, config = load_model(runs[0] / "fold-00-seed-0")
    assert model.config["options"] == config["train"]["head_options"]


def test_tune_goes_through_the_same_study(tmp_path, corpus):
    real, _ = corpus
    run = tmp_path / "run"
    invoke("train", real, "--test-speakers", "spk1", "--head", "mlp", "--tune", "lr=0.01,0.001", "--tune", "hidden=8,16",
           "--out", run, *ARGS)
    config = _config(run)
    assert config["search"]["sampler"] == "grid" and config["search"]["n_trials"] == 4
    assert sorted((t["lr"], t["hidden"]) for t in config["tuning"]) == [(0.001, 8), (0.001, 16), (0.01, 8), (0.01, 16)]
    best = max(config["tuning"], key=lambda t: t["val_UA"])
    assert (config["train"]["lr"], config["head"]["options"]["hidden"]) == (best["lr"], best["hidden"])
    with pytest.raises(SercliError, match="either --search N or --tune"):
        invoke("train", real, "--test-speakers", "spk1", "--tune", "lr=0.01,0.001", "--search", "2",
               "--out", tmp_path / "both", *ARGS)
