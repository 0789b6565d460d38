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


def test_parallel_jobs_give_the_serial_numbers(tmp_path, corpus):
    real, synthetic = corpus
    args = ["train", real, "--synthetic", synthetic, "--strategy", "mix", "--cv", "loso", "--seeds", "0,1",
            "--refit", *FAST]
    invoke(*args, "--jobs", "1", "--out", tmp_path / "serial")
    invoke(*args, "--jobs", "2", "--out", tmp_path / "parallel")
    serial, parallel = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("serial", "parallel"))
    assert serial == parallel and serial["n_jobs"] == 10
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
    from sercli.plugins import registry

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    # the strategy's plugin (the toy features come from no backbone plugin)
    assert config["plugins"] == {"strategies": registry().infos["strategies"].version}
