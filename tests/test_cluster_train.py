"""Folds x seeds past this process: `train --cv` on a local Ray cluster (`--cluster ray`, with a
worker dying mid-run) and one job per device (`--devices cpu,cpu`, the path `--devices
cuda:0,cuda:1` takes) give, job for job, the numbers and files of a serial `--jobs 1` run (each
job seeds itself)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from sercli.core.errors import SercliError
from test_train_eval import FAST, invoke, make_corpus

# the Ray modules run on one pytest-xdist worker (--dist loadgroup), on one local cluster (conftest's local_ray)
pytestmark = pytest.mark.xdist_group("ray")

ARGS = ["--cv", "loso", "--seeds", "0,1", "--norm", "none", *FAST]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_speakers=3)[0]


@pytest.fixture(scope="module")
def serial(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("serial") / "run"
    invoke("train", corpus, *ARGS, "--jobs", "1", "--out", out)
    return out


def same_jobs(a, b) -> None:
    """Every job of run ``a`` is, file for file, the job of ``b``; the pooled metrics are the same."""
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (a, b)]
    assert metrics[0] == metrics[1] and metrics[0]["n_jobs"] == 6
    for job in metrics[0]["jobs"]:
        for name in ("model.safetensors", "history.json", "predictions.jsonl", "metrics.json", "test.jsonl"):
            assert (a / job["name"] / name).read_bytes() == (b / job["name"] / name).read_bytes(), (job["name"], name)
        configs = [json.loads((d / job["name"] / "config.json").read_text()) for d in (a, b)]
        assert configs[0] == configs[1]
    runs = [json.loads((d / "run.json").read_text()) for d in (a, b)]
    assert runs[0]["jobs"] == runs[1]["jobs"]


class _DiesOnce:
    """A job worker whose process dies at the start of one job, the first time only."""

    mark: Path

    def __call__(self, shard):
        if shard[0][3].name == "fold-01-seed-1" and not self.mark.exists():
            self.mark.touch()
            os._exit(1)
        return super().__call__(shard)


def test_cluster_folds_give_the_serial_jobs_though_a_worker_dies(tmp_path, corpus, serial, local_ray, monkeypatch):
    from ray import cloudpickle

    from sercli.runs import jobs as runs

    dies = type("DiesOnce", (_DiesOnce, runs._JobWorker), {"mark": tmp_path / "died"})
    monkeypatch.setattr(runs, "_JobWorker", dies)
    out = tmp_path / "run"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    try:
        invoke("train", corpus, *ARGS, "--cluster", "ray", "--out", out)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    # a worker (not this process: it would have ended here) died mid-run; its job trained again elsewhere
    assert (tmp_path / "died").exists()
    same_jobs(serial, out)
    assert local_ray.is_initialized()  # the plugin left the ray it joined running


def test_one_job_per_device_gives_the_serial_jobs(tmp_path, corpus, serial):
    out = tmp_path / "run"
    invoke("train", corpus, *ARGS, "--devices", "cpu,cpu", "--out", out)
    same_jobs(serial, out)


def test_each_job_trains_on_the_device_it_holds(monkeypatch):
    """A job takes a device from the pool, trains on it and gives it back; the shared plan keeps its own."""
    import multiprocessing

    from sercli.runs import jobs as runs
    from sercli.learning.train import TrainConfig

    seen = []
    monkeypatch.setattr(runs, "train_job", lambda plan, *rest: seen.append(plan.cfg.device) or plan.cfg.device)
    plan = runs.Plan(labels=["a", "b"], folds=[], seeds=[0], strategy="real-only", strategy_options={},
                     cfg=TrainConfig(), protocol="loso")
    with multiprocessing.Manager() as manager:
        free = manager.Queue()
        free.put("cuda:1")
        assert runs._on_free_device(free, (plan, None, 0)) == "cuda:1"
        assert free.qsize() == 1 and plan.cfg.device == "cpu"
    done = []
    assert runs.trained_jobs([(plan, None, 0)] * 3, devices=["cuda:7"], done=done.append) == ["cuda:7"] * 3
    assert seen == ["cuda:1", "cuda:7", "cuda:7", "cuda:7"] and done[-1] == 3


def test_a_single_job_says_it_has_nothing_to_spread(tmp_path, corpus, monkeypatch):
    from sercli.core import plugins as pl

    created, create = [], pl.create
    monkeypatch.setattr(pl, "create", lambda family, *a, **k: created.append(family) or create(family, *a, **k))
    result = invoke("train", corpus, "--test-speakers", "spk2", "--cluster", "ray", "--out", tmp_path / "run", *FAST)
    assert "nothing to spread" in result.output and "cluster" not in created
    assert (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("args, message", [
    (["--devices", "cpu,cpu", "--cluster", "ray"], "choose one"),
    (["--devices", "cpu,cpu", "--jobs", "2"], "drop --jobs"),
    (["--devices", "cpu", "--device", "cuda"], "choose one"),
    (["--cluster", "ray://"], "NAME://ADDRESS"),
    (["--cluster", "nosuch"], "nosuch"),
])
def test_refusals(tmp_path, corpus, args, message):
    with pytest.raises(SercliError, match=message):
        invoke("train", corpus, *ARGS, *args, "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()
