"""The scarce-data protocol (--real-fraction) and the real-vs-synthetic language check."""

from __future__ import annotations

from collections import Counter

import pytest

from sercli.core.errors import SercliError
from sercli.learning.scarce import keep_fraction, language_mismatch

from conftest import run_here as cli  # what the commands say and write, in this process


def corpus(n_speakers=4, emotions=("angry", "happy", "sad", "neutral"), per_cell=(1, 3, 7, 10)):
    """Records whose cells (speaker x emotion) have uneven sizes."""
    out = []
    for s in range(n_speakers):
        for e, emo in enumerate(emotions):
            n = per_cell[(s + e) % len(per_cell)]
            out += [{"id": f"s{s}-{emo}-{k}", "speaker": f"spk{s}", "emotion": emo} for k in range(n)]
    return out


def cells(records):
    return Counter((r["speaker"], r["emotion"]) for r in records)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.8])
def test_each_speaker_emotion_cell_keeps_its_share(fraction):
    records = corpus()
    kept = keep_fraction(records, fraction, seed=0)
    assert len(kept) == max(round(fraction * len(records)), len(cells(records)))
    before, after = cells(records), cells(kept)
    assert set(after) == set(before)  # at least one utterance of every cell
    for key, n in before.items():
        assert after[key] >= 1 and abs(after[key] - fraction * n) <= 1, (key, n, after[key])
    ids = [r["id"] for r in records]
    assert [r["id"] for r in kept] == [i for i in ids if i in {r["id"] for r in kept}]  # original order


def test_the_subset_is_seeded():
    records = corpus()
    a, b, c = (keep_fraction(records, 0.3, seed=s) for s in (0, 0, 1))
    assert a == b and a != c
    assert keep_fraction(records, 1.0, seed=3) == records
    with pytest.raises(SercliError, match="--real-fraction"):
        keep_fraction(records, 0.0, seed=0)
    with pytest.raises(SercliError, match="--real-fraction"):
        keep_fraction(records, 1.5, seed=0)


def test_language_mismatch_names_both_languages():
    de = [{"language": "de"}, {"language": "de-AT"}]
    en = [{"language": "en"}]
    message = language_mismatch(de, en)
    assert message and "de" in message and "en" in message and "\n" not in message
    assert language_mismatch(de, [{"language": "de"}]) is None
    assert language_mismatch(de, [{}]) is None and language_mismatch([{}], en) is None  # unknown: no claim


# -- the protocol in a run: F of every non-test speaker, training and validation alike ----------

def test_plan_splits_keep_the_fraction_of_training_and_validation_and_leave_the_test_whole(tmp_path):
    import json

    from sercli.learning.cv import make_folds, split_val
    from sercli.runs.jobs import Plan, plan_splits
    from sercli.learning.train import TrainConfig
    from test_train_eval import CLASSES, make_corpus

    real_path, _ = make_corpus(tmp_path, n_speakers=5, per_class=6)
    real = [json.loads(line) for line in real_path.read_text().splitlines()]
    folds = make_folds(real, "loso")
    plan = Plan(labels=list(CLASSES), folds=folds, seeds=[0, 1], strategy="real-only", strategy_options={},
                cfg=TrainConfig(), protocol="loso", real_fraction=0.5)
    splits = plan_splits(plan)
    for (i, seed), job in splits.items():
        full_train, full_val = split_val(folds[i], plan.val_fraction, seed)
        assert job.test == folds[i].test  # the test fold stays whole
        for part, full in ((job.train, full_train), (job.val, full_val)):
            assert {r["id"] for r in part} <= {r["id"] for r in full}
            kept, whole = cells(part), cells(full)
            assert set(kept) == set(whole) and all(1 <= kept[k] and abs(kept[k] - n / 2) <= 1 for k, n in whole.items())
        non_test = len(full_train) + len(full_val)
        assert job.non_test == non_test and len(job.train) + len(job.val) == round(non_test / 2)
        assert job.real_used()["share"] == round((len(job.train) + len(job.val)) / non_test, 4)
    assert splits[(0, 0)].train != splits[(0, 1)].train  # each seed draws its own subset


def test_no_model_learns_from_more_than_the_fraction_refit_and_search_trials_included(tmp_path, monkeypatch):
    """At F = 0.25 every model a job trains (each --search trial, the refit) sees at most F of
    the fold's non-test real utterances plus one per speaker x emotion cell (the rounding)."""
    import json

    from sercli.learning.train import Trainer
    from test_train_eval import CLASSES, invoke, make_corpus

    real_path, _ = make_corpus(tmp_path, n_speakers=6, per_class=8)
    real = [json.loads(line) for line in real_path.read_text().splitlines()]
    seen: list[set[str]] = []
    original = Trainer.fit

    def spy(self, model, train, val, *args, **kwargs):
        seen.append({r["id"] for r in train.records if r.get("source") == "real"} | {r["id"] for r in val.records})
        return original(self, model, train, val, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    run = tmp_path / "run"
    invoke("train", real_path, "--cv", "loso", "--real-fraction", "0.25", "--search", "2", "--refit", "--out", run,
           "--epochs", "3", "--patience", "2", "--batch-size", "16")
    n_speakers, n_cells = 6, 6 * len(CLASSES)
    non_test = len(real) * (n_speakers - 1) // n_speakers
    bound = 0.25 * non_test + (n_speakers - 1) * len(CLASSES)
    assert len(seen) >= n_speakers * 3  # two trials and a refit per job
    assert all(len(ids) <= bound for ids in seen), (max(map(len, seen)), bound)
    assert n_cells and max(map(len, seen)) < 0.5 * non_test
    for job in sorted(run.glob("*-seed-*")):
        used = json.loads((job / "config.json").read_text())["real"]
        assert used["non_test"] == non_test and used["learned_from"] <= bound
        assert used["learned_from"] == used["train"] + used["val"]


def test_the_run_says_how_much_real_speech_it_learned_from(tmp_path):
    from test_train_eval import FAST, make_corpus

    real_path, _ = make_corpus(tmp_path, per_class=8)
    proc = cli("train", real_path, "--cv", "loso", "--real-fraction", "0.25", "--out", tmp_path / "run", *FAST,
               check=True)
    line = next(l for l in proc.stderr.splitlines() if "learned from" in l)
    assert "of 96 non-test real utterances" in line and "25%" in line, line
    proc = cli("train", real_path, "--cv", "loso", "--out", tmp_path / "all", *FAST, check=True)
    assert "learned from 96 of 96 non-test real utterances, 100%" in proc.stderr


def test_train_records_the_fraction_and_warns_on_a_language_mismatch(tmp_path):
    import json

    from test_train_eval import FAST, make_corpus

    real_path, syn_path = make_corpus(tmp_path, per_class=6)
    for path, lang in ((real_path, "de"), (syn_path, "en")):
        recs = [{**json.loads(line), "language": lang} for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "run"
    proc = cli("train", real_path, "--synthetic", syn_path, "--strategy", "mix", "-O", "ratio=0.5", "--cv", "loso",
               "--real-fraction", "0.5", "--out", out, "--head", "mlp", *FAST, check=True)
    lines = [line for line in proc.stderr.splitlines() if "language" in line or "synthetic records are in" in line]
    assert len(lines) == 1 and "de" in lines[0] and "en" in lines[0]
    run = json.loads((out / "run.json").read_text())
    assert run["real_fraction"] == 0.5
    config = json.loads((out / "fold-00-seed-0" / "config.json").read_text())
    assert config["real_fraction"] == 0.5
    # each training speaker keeps 3 of the 6 utterances of each of its 3 emotions
    assert config["counts"]["train"] == len(config["speakers"]["train"]) * 9
    bad = cli("train", real_path, "--cv", "loso", "--real-fraction", "0", "--out", tmp_path / "bad", "--head", "mlp", *FAST)
    assert bad.returncode != 0 and "--real-fraction" in bad.stderr


# -- speech derived from real recordings (derived_from) ------------------------------------------

def _derived_corpus(tmp_path):
    """The toy corpus with one derived synthetic record per real one (its features), and a
    second generation derived from the first (a chain to the real source)."""
    import json

    from test_train_eval import make_corpus

    real_path, _ = make_corpus(tmp_path, n_speakers=5, per_class=8)
    real = [json.loads(line) for line in real_path.read_text().splitlines()]
    first = [{**r, "id": f"rs-{r['id']}", "source": "synthetic", "speaker": f"rs:{r['speaker']}",
              "derived_from": {"id": r["id"], "speaker": r["speaker"]}} for r in real]
    second = [{**r, "id": f"rs2-{r['id']}", "derived_from": {"id": r["id"], "speaker": r["speaker"]}} for r in first[::3]]
    syn_path = tmp_path / "derived.jsonl"
    syn_path.write_text("".join(json.dumps(r) + "\n" for r in first + second))
    return real_path, syn_path, real


def test_derived_speech_trains_only_beside_its_own_source(tmp_path, monkeypatch):
    import json

    from sercli.learning.train import Trainer
    from test_train_eval import invoke

    real_path, syn_path, real = _derived_corpus(tmp_path)
    source = {f"rs-{r['id']}": r["id"] for r in real} | {f"rs2-rs-{r['id']}": r["id"] for r in real}
    calls = []
    original = Trainer.fit

    def spy(self, model, train, val, *args, **kwargs):
        calls.append(({r["id"] for r in train.records if r["source"] == "real"},
                      [r["id"] for r in train.records if r["source"] == "synthetic"]))
        return original(self, model, train, val, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    run = tmp_path / "run"
    invoke("train", real_path, "--synthetic", syn_path, "--strategy", "mix", "-O", "ratio=1", "--cv", "loso",
           "--real-fraction", "0.5", "--refit", "--out", run, "--epochs", "2", "--patience", "2", "--batch-size", "16")
    assert calls and all(synthetic for _, synthetic in calls)
    for real_ids, synthetic in calls:
        assert {source[s] for s in synthetic} <= real_ids  # each derived utterance beside its own source
    for job in sorted(run.glob("*-seed-*")):
        config = json.loads((job / "config.json").read_text())
        dropped = config["counts"]["synthetic_dropped"]
        assert {"derived_from_test", "derived_from_validation", "derived_from_left_out_by_real_fraction"} <= set(dropped)
        kept = config["counts"]["synthetic"]
        assert kept + sum(dropped.values()) == len(syn_path.read_text().splitlines())


def test_a_derived_record_naming_no_record_is_one_line(tmp_path):
    import json

    real_path, syn_path, _ = _derived_corpus(tmp_path)
    recs = [json.loads(line) for line in syn_path.read_text().splitlines()]
    recs[3]["derived_from"] = {"id": "no-such-utterance", "speaker": "x"}
    syn_path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "run"
    proc = cli("train", real_path, "--synthetic", syn_path, "--strategy", "mix", "--cv", "loso", "--out", out)
    assert proc.returncode == 1 and not out.exists()
    lines = proc.stderr.strip().splitlines()
    assert "no-such-utterance" in lines[-1] and "derived_from" in lines[-1] and "Traceback" not in proc.stderr
