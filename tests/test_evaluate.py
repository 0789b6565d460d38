"""One inference path: `predict` gives the probabilities `eval` gives; `--jobs N` gives the
numbers of `--jobs 1`; a run records the versions of the plugins it used."""

from __future__ import annotations

import json

import pytest

from test_train_eval import FAST, invoke, make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_gives_the_probabilities_eval_gives(tmp_path, corpus):
    real, synthetic = corpus
    run = tmp_path / "run"
    invoke("train", real, "--synthetic", synthetic, "--strategy", "mix", "--test-speakers", "spk3,spk4",
           "--out", run, *FAST)
    written = {p["id"]: p for p in _jsonl((run / "predictions.jsonl").read_text())}  # by train
    invoke("eval", run, "--out", tmp_path / "ev")  # again, by eval
    evaluated = {p["id"]: p for p in _jsonl((tmp_path / "ev" / "predictions.jsonl").read_text())}
    predicted = {p["id"]: p for p in _jsonl(invoke("predict", run, run / "test.jsonl").stdout)}
    assert len(predicted) == 18 and set(predicted) == set(evaluated) == set(written)
    for rid, p in predicted.items():
        assert p["probabilities"] == evaluated[rid]["probabilities"] == written[rid]["probabilities"]
        assert p["predicted"] == evaluated[rid]["predicted"]


def test_parallel_jobs_give_the_serial_numbers(tmp_path):
    real, synthetic = make_corpus(tmp_path / "corpus", n_speakers=3)  # six jobs: enough to share out
    # ratio=auto: the harm guard's inner trainings run in the jobs too (two inner folds, two candidates)
    args = ["train", real, "--synthetic", synthetic, "--strategy", "mix", "-O", "inner_folds=2", "-O", "ratios=0,1",
            "--cv", "loso", "--seeds", "0,1", "--refit", *FAST]
    invoke(*args, "--jobs", "1", "--out", tmp_path / "serial")
    invoke(*args, "--jobs", "2", "--out", tmp_path / "parallel")
    serial, parallel = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("serial", "parallel"))
    assert serial == parallel and serial["n_jobs"] == 6
    for job in serial["jobs"]:
        a, b = ((tmp_path / d / job["name"]) for d in ("serial", "parallel"))
        assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
        assert (a / "history.json").read_text() == (b / "history.json").read_text()
        assert (a / "predictions.jsonl").read_text() == (b / "predictions.jsonl").read_text()
    runs = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("serial", "parallel")]
    assert runs[0]["jobs"] == runs[1]["jobs"]


def test_run_records_plugin_versions(tmp_path, corpus):
    real, _ = corpus
    invoke("train", real, "--test-speakers", "spk4", "--out", tmp_path / "run", *FAST)
    from sercli.core.plugins import registry

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    # the strategy's and the head's plugins (the toy features come from no backbone plugin)
    assert config["plugins"] == {name: registry().infos[name].version for name in ("strategies", "heads")}


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, corpus):
    """LOSO over 5 speakers with seeds 0 and 1: ten jobs."""
    real, _ = corpus
    run = tmp_path_factory.mktemp("cv") / "run"
    invoke("train", real, "--cv", "loso", "--seeds", "0,1", "--norm", "none", "--out", run, *FAST)
    return run


def test_predict_ensemble_averages_exactly_the_jobs_probabilities(cv_run, corpus):
    import numpy as np

    from sercli.learning.data import Examples
    from sercli.evaluation.evaluate import rounded
    from sercli.learning.model import probabilities
    from sercli.core.records import read_records
    from sercli.core.runfolder import jobs_of
    from sercli.learning.train import load_model

    real, _ = corpus
    records = read_records(real)
    predicted = _jsonl(invoke("predict", cv_run, real, "--ensemble").stdout)
    jobs = jobs_of(cv_run)
    assert len(jobs) == 10 and [p["id"] for p in predicted] == [r["id"] for r in records]
    per_job = []
    for job in jobs:
        model, config = load_model(job["dir"])
        data = Examples.build(records, {lab: i for i, lab in enumerate(config["labels"])}, 0)
        per_job.append(probabilities(model, data, config["train"]["batch_size"]))
    mean = np.mean(per_job, axis=0)
    for p, row in zip(predicted, mean):
        assert p["probabilities"] == rounded(config["labels"], row)
        assert p["predicted"] == config["labels"][int(row.argmax())]
    # one job, by name: its own probabilities
    one = _jsonl(invoke("predict", cv_run, real, "--job", jobs[3]["name"]).stdout)
    assert [p["probabilities"] for p in one] == [rounded(config["labels"], row) for row in per_job[3]]
    # without --ensemble or --job: every job averaged, as before the flag existed
    default = _jsonl(invoke("predict", cv_run, real).stdout)
    assert [p["probabilities"] for p in default] == [p["probabilities"] for p in predicted]
    from sercli.core.errors import SercliError

    with pytest.raises(SercliError, match="no such job"):
        invoke("predict", cv_run, real, "--job", "fold-99-seed-0")


def test_eval_ensemble_seeds_scores_each_fold_with_its_seeds_averaged(cv_run, tmp_path):
    import numpy as np

    from sercli.evaluation.evaluate import job_probabilities, load_job, rounded
    from sercli.core.runfolder import jobs_of

    out = tmp_path / "ev"
    printed = json.loads(invoke("eval", cv_run, "--ensemble-seeds", "--out", out).stdout.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed["UA"] == metrics["UA"] and metrics["ensemble_seeds"] is True
    assert metrics["n_jobs"] == metrics["n_folds"] == 5 and metrics["seeds"] == [0, 1]
    assert [j["seeds"] for j in metrics["jobs"]] == [[0, 1]] * 5 and metrics["pooled"]["n"] == 45
    jobs = [load_job(j) for j in jobs_of(cv_run)]
    for fold in ("fold-00", "fold-03"):
        members = [job for job in jobs if job.fold == fold]
        assert [job.seed for job in members] == [0, 1]
        data, first = job_probabilities(members[0])
        _, second = job_probabilities(members[1])
        mean = (first + second) / 2
        labels = members[0].config["labels"]
        written = _jsonl((out / f"{fold}-ensemble" / "predictions.jsonl").read_text())
        assert [p["id"] for p in written] == [r["id"] for r in data.records]
        assert [p["probabilities"] for p in written] == [rounded(labels, row) for row in mean]
        fold_metrics = json.loads((out / f"{fold}-ensemble" / "metrics.json").read_text())
        correct = np.mean(np.asarray(data.labels) == mean.argmax(1))
        assert fold_metrics["WA"] == pytest.approx(correct)
