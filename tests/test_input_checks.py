"""Every command checks its input as `extract` does (issue 27): duplicate records, conflicting
and unknown labels, and numeric options, each refused in one line naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_tone
from test_train_eval import FAST, make_corpus
from sercli.cli import _run

HOLDOUT = [*FAST, "--test-speakers", "spk0"]


def run(capsys, *args):
    """(exit code, stdout, stderr) of `sercli ARGS` through the CLI's own error boundary."""
    capsys.readouterr()
    code = _run([str(a) for a in args], debug=False)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *args, says: str):
    code, out, err = run(capsys, *args)
    assert code != 0 and out == "", err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and says in lines[0], err
    assert "Traceback" not in err and ".tmp-" not in err, err
    return lines[0]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def clean_run(corpus, tmp_path_factory):
    """A run on the clean input: what every accepted variant must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "run"
    assert _run(["train", str(corpus[0]), *HOLDOUT, "--out", str(out)], debug=False) == 0
    return out


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


# -- duplicate records -------------------------------------------------------------------------

def test_the_same_file_twice_is_refused(capsys, tmp_path, corpus):
    real, _ = corpus
    line = refused(capsys, "train", real, real, *HOLDOUT, "--out", tmp_path / "run", says="duplicate record ids")
    assert "'s0-0-0'" in line and f"{real} line 1" in line and "given again" in line and "--dedupe" in line
    assert not (tmp_path / "run").exists()


def test_every_line_twice_is_refused_and_dedupe_gives_the_clean_numbers(capsys, tmp_path, corpus, clean_run):
    real, _ = corpus
    twice = write(tmp_path / "twice.jsonl", [r for r in records(real) for _ in (0, 1)])
    line = refused(capsys, "train", twice, *HOLDOUT, "--out", tmp_path / "run", says="duplicate record ids")
    assert f"{twice} line 1, {twice} line 2" in line and "45 ids" in line
    code, out, err = run(capsys, "train", twice, *HOLDOUT, "--dedupe", "--out", tmp_path / "run")
    assert code == 0 and out == "", err
    assert "dropped 45 duplicate records" in err
    assert metrics(tmp_path / "run") == metrics(clean_run)
    test_ids = [r["id"] for r in records(tmp_path / "run" / "test.jsonl")]
    assert len(test_ids) == len(set(test_ids)) == 9


def test_a_duplicate_across_synthetic_and_real_is_refused(capsys, tmp_path, corpus):
    real, synthetic = corpus
    synth = write(tmp_path / "syn.jsonl", records(synthetic) + [records(real)[3]])
    line = refused(capsys, "train", real, "--synthetic", synth, "--strategy", "mix", *HOLDOUT,
                   "--out", tmp_path / "run", says="duplicate record ids")
    assert "'s0-1-0'" in line and f"{real} line 4" in line and f"{synth} line 13" in line


def test_a_duplicate_across_test_and_real_is_refused(capsys, tmp_path, corpus):
    real, _ = corpus
    rest = [r for r in records(real) if r["speaker"] != "spk0"]
    train = write(tmp_path / "train.jsonl", rest)
    test = write(tmp_path / "test.jsonl", [r for r in records(real) if r["speaker"] == "spk0"] + rest[:1])
    refused(capsys, "train", train, "--test", test, *FAST, "--out", tmp_path / "run", says="duplicate record ids")


@pytest.mark.parametrize("dedupe", [[], ["--dedupe"]])
def test_one_id_with_two_emotions_is_refused_even_with_dedupe(capsys, tmp_path, corpus, dedupe):
    real, _ = corpus
    recs = records(real)
    both = write(tmp_path / "both.jsonl", recs + [dict(recs[0], emotion="sad")])
    line = refused(capsys, "train", both, *HOLDOUT, *dedupe, "--out", tmp_path / "run", says="two emotions")
    assert "'s0-0-0'" in line and "'angry'" in line and "'sad'" in line and f"{both} line 46" in line


def test_eval_predict_filter_and_export_refuse_duplicates(capsys, tmp_path, corpus, clean_run):
    real, _ = corpus
    test = [r for r in records(real) if r["speaker"] == "spk0"]
    twice = write(tmp_path / "twice.jsonl", test + test[:2])
    refused(capsys, "eval", clean_run, twice, says="duplicate record ids")
    refused(capsys, "predict", clean_run, twice, says="duplicate record ids")
    refused(capsys, "export", "emobox", twice, "-o", tmp_path / "e.jsonl", says="duplicate record ids")
    refused(capsys, "filter", twice, "-g", "emotion", "-O", f"run={clean_run}", "--dropped", tmp_path / "d.jsonl", says="duplicate record ids")
    wav = write_tone(tmp_path / "a.wav")
    refused(capsys, "predict", clean_run, wav, wav, says="duplicate record ids")
    code, out, err = run(capsys, "eval", clean_run, twice, "--dedupe")
    assert code == 0 and json.loads(out)["pooled"] and "dropped 2 duplicate records" in err


# -- labels ------------------------------------------------------------------------------------

def test_a_label_outside_every_known_set_is_refused(capsys, tmp_path, corpus):
    real, _ = corpus
    recs = records(real)
    recs[5]["emotion"] = "amusement"
    odd = write(tmp_path / "odd.jsonl", recs)
    line = refused(capsys, "train", odd, *HOLDOUT, "--out", tmp_path / "run", says="'amusement'")
    assert f"{odd} line 6" in line and "--labels" in line
    # named as part of the label set, it is a class (that fold then refuses: no training examples of it)
    refused(capsys, "train", odd, *HOLDOUT, "--labels", "angry,happy,sad,amusement", "--out", tmp_path / "run",
            says="no training examples of 'amusement'")
    # --labels: anything outside the set is an error, canonical names included
    line = refused(capsys, "train", real, *HOLDOUT, "--labels", "angry,happy", "--out", tmp_path / "run",
                   says="'sad' is not in --labels")
    # --classes: the records of other emotions are left out, with a warning naming them
    code, _, err = run(capsys, "train", odd, *HOLDOUT, "--classes", "angry,happy,sad", "--out", tmp_path / "run")
    assert code == 0 and "amusement" in err, err
    refused(capsys, "train", real, *HOLDOUT, "--classes", "angry,amusement", "--out", tmp_path / "r2",
            says="--classes: emotion 'amusement'")


def test_spellings_of_known_emotions_are_normalised_and_give_the_clean_numbers(capsys, tmp_path, corpus, clean_run):
    real, _ = corpus
    recs = records(real)
    spelt = {"angry": ["Anger", "ANGRY", "anger"], "happy": ["HAPPINESS", "Happy", "joy"], "sad": ["sadness", "Sad", "T"]}
    for i, r in enumerate(recs):
        r["emotion"] = spelt[r["emotion"]][i % 3]
    odd = write(tmp_path / "spelt.jsonl", recs)
    code, out, err = run(capsys, "train", odd, *HOLDOUT, "--out", tmp_path / "run")
    assert code == 0 and out == "", err
    said = [line for line in err.splitlines() if "normalised" in line]
    assert len(said) == 1 and "'Anger' -> 'angry'" in said[0] and "'T' -> 'sad'" in said[0], err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["labels"] == ["angry", "happy", "sad"]
    assert metrics(tmp_path / "run") == metrics(clean_run)
    code, out, err = run(capsys, "train", odd, *HOLDOUT, "--classes", "Anger,happiness", "--out", tmp_path / "r2")
    assert code == 0 and json.loads((tmp_path / "r2" / "config.json").read_text())["labels"] == ["angry", "happy"]


def test_a_corpus_code_read_two_ways_is_refused(capsys, tmp_path, corpus):
    real, _ = corpus
    recs = records(real)
    recs[0]["emotion"] = "A"  # EmoDB: fear; MSP-Podcast: angry
    line = refused(capsys, "train", write(tmp_path / "a.jsonl", recs), *HOLDOUT, "--out", tmp_path / "run",
                   says="'A' reads differently")
    assert "emodb: fear" in line and "msp-podcast: angry" in line


def test_eval_reads_labels_as_the_run_learnt_them(capsys, tmp_path, corpus, clean_run):
    real, _ = corpus
    test = [r for r in records(real) if r["speaker"] == "spk0"]
    code, out, _ = run(capsys, "eval", clean_run, write(tmp_path / "t.jsonl", test))
    plain = json.loads(out)["pooled"]
    for r in test:
        r["emotion"] = r["emotion"].upper()
    code, out, err = run(capsys, "eval", clean_run, write(tmp_path / "upper.jsonl", test))
    assert code == 0 and json.loads(out)["pooled"] == plain and "'ANGRY' -> 'angry'" in err
    test[0]["emotion"] = "neutral"
    refused(capsys, "eval", clean_run, write(tmp_path / "n.jsonl", test), says="'neutral' is not in the emotions")


def test_scarce_classes_are_named_with_their_count(capsys, tmp_path, corpus):
    real, _ = corpus
    recs = [r for r in records(real) if not (r["emotion"] == "sad" and r["speaker"] not in ("spk0", "spk1"))]
    code, _, err = run(capsys, "train", write(tmp_path / "few.jsonl", recs), *FAST, "--test-speakers", "spk0",
                       "--val-speakers", "spk2", "--out", tmp_path / "run")
    assert code == 0 and "fewer than 5 training records of 'sad' (3)" in err, err
    assert "validation part has no 'sad'" in err


# -- numeric options ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--lr", "inf"], "--lr inf: expected a finite number > 0"),
    (["--lr", "nan"], "--lr nan: expected a finite number > 0"),
    (["--lr", "1e400"], "--lr inf: expected a finite number > 0"),
    (["--lr", "0"], "--lr 0: expected a finite number > 0"),
    (["--lr", "-1e-3"], "--lr -0.001: expected a finite number > 0"),
    (["--weight-decay", "inf"], "--weight-decay inf: expected a finite number"),
    (["--real-fraction", "inf"], "--real-fraction inf"),
    (["--backbone-lr", "-1"], "--backbone-lr -1: expected a finite number > 0"),
    (["--seeds", "0,-1"], "--seeds -1: expected an integer >= 0"),
    (["--seeds", str(2**40)], f"--seeds {2**40}: expected an integer >= 0"),
    (["--tune", "lr=1e-3,inf"], "--lr inf: expected a finite number > 0"),
    (["-O", "dropout=nan"], "dropout=nan: Input should be a finite number"),
])
def test_train_numeric_options_name_option_and_value(capsys, tmp_path, corpus, args, says):
    real, _ = corpus
    refused(capsys, "train", real, *HOLDOUT, *args, "--out", tmp_path / "run", says=says)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, says", [
    (["extract", "{audio}", "--chunk-seconds", "inf", "-s", "{tmp}/s"], "--chunk-seconds inf: expected a finite number"),
    (["extract", "{audio}", "--shard-mb", "inf", "-s", "{tmp}/s"], "--shard-mb inf: expected a finite number"),
    (["extract", "{audio}", "--batch-seconds", "inf", "-s", "{tmp}/s"], "--batch-seconds inf: expected a finite number"),
    (["degrade", "{audio}", "--reverb", "inf", "-d", "{tmp}/d"], "--reverb inf: expected a finite number"),
    (["degrade", "{audio}", "--snr", "5", "--seed", "-1", "-d", "{tmp}/d"], "--seed -1: expected an integer >= 0"),
    (["gen-text", "--seed", str(2**33), "-n", "1"], f"--seed {2**33}: expected an integer >= 0"),
])
def test_other_commands_numeric_options_name_option_and_value(capsys, tmp_path, args, says):
    audio = write(tmp_path / "audio.jsonl", [{"id": "a", "audio": str(write_tone(tmp_path / "a.wav"))}])
    args = [a.format(audio=audio, tmp=tmp_path) for a in args]
    refused(capsys, *args, says=says)
