"""Experiment tracking (register_trackers): the built-in `tensorboard` tracker writes event files
that TensorBoard's own reader opens, holding the run's curves, test metrics and figures."""

from __future__ import annotations

import json

import pytest

from sercli.evaluation.figures import chosen_epochs

QUICK = ["--epochs", "4", "--patience", "2", "--batch-size", "16"]  # a few seconds a run


def test_chosen_epoch_is_the_best_validation_ua_per_stage():
    h = [{"stage": "real", "val_UA": u, "val_loss": l} for u, l in ((0.5, 1.0), (0.7, 0.9), (0.7, 0.8), (0.6, 0.7))]
    h += [{"stage": "refit real", "val_UA": 0.9, "val_loss": 0.1}]  # refit: a fixed count, nothing chosen
    assert chosen_epochs(h) == [2]  # the tie at 0.7 goes to the lower loss
    two = [{"stage": "synthetic", "val_UA": 0.4, "val_loss": 1}, {"stage": "synthetic", "val_UA": 0.3, "val_loss": 1},
           {"stage": "real", "val_UA": 0.6, "val_loss": 1}, {"stage": "real", "val_UA": 0.6, "val_loss": 1}]
    assert chosen_epochs(two) == [0, 2]  # one per stage; an exact tie keeps the earlier epoch


def test_tensorboard_tracker_writes_what_eventaccumulator_reads(cli, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from test_train_eval import invoke, make_corpus

    real, _ = make_corpus(tmp_path / "c")
    run = tmp_path / "run"
    invoke("train", real, "--cv", "loso", "--out", run, *QUICK)
    cli("track", run, "--tracker", "tensorboard", "--out", tmp_path / "tb", check=True)
    acc = EventAccumulator(str(tmp_path / "tb" / "run"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    metrics = json.loads((run / "metrics.json").read_text())
    ua = [e.value for e in acc.Scalars("test/UA")]
    assert ua == pytest.approx([j["UA"] for j in metrics["jobs"]], abs=1e-6)
    assert acc.Scalars("summary/pooled_UA")[0].value == pytest.approx(metrics["pooled"]["UA"], abs=1e-6)
    job = metrics["jobs"][0]["name"]
    history = json.loads((run / job / "history.json").read_text())
    curve = acc.Scalars(f"{job}/val_UA")
    assert [e.step for e in curve] == list(range(1, len(history) + 1))
    assert [e.value for e in curve] == pytest.approx([h["val_UA"] for h in history], abs=1e-6)
    assert [e.step for e in acc.Scalars(f"{job}/chosen_epoch")] == [i + 1 for i in chosen_epochs(history)]
    assert "test/confusion" in tags["images"] and f"{job}/curves" in tags["images"]
    assert "params/text_summary" in tags["tensors"]
    # a tracker's options are validated like any plugin's
    bad = cli("track", run, "-O", "flush_secs=0", "--out", tmp_path / "tb2")
    assert bad.returncode == 1 and "flush_secs" in bad.stderr


def test_train_with_a_tracker_writes_into_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from test_train_eval import invoke, make_corpus

    real, _ = make_corpus(tmp_path / "c")
    run = tmp_path / "run"
    invoke("train", real, "--test-speakers", "spk3,spk4", "--tracker", "tensorboard", "-O", "tracker.flush_secs=5",
           "--out", run, *QUICK)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    metrics = json.loads((run / "metrics.json").read_text())
    assert acc.Scalars("test/UA")[0].value == pytest.approx(metrics["jobs"][0]["UA"], abs=1e-6)
    history = json.loads((run / "history.json").read_text())
    assert len(acc.Scalars("job/train_loss")) == len(history)
