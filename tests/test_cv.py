"""Protocols from manifest fields, the validation part inside a fold, and the leakage guards."""

from __future__ import annotations

import pytest

from sercli.cv import check_speakers, drop_leaking, holdout, make_folds, normalise_text, split_val
from sercli.errors import SercliError


def records(n_speakers=6, per_speaker=6, classes=("angry", "happy", "sad")):
    return [
        {"id": f"s{s}-{k}", "speaker": f"spk{s}", "session": f"ses{s // 2}", "emotion": classes[k % len(classes)],
         "transcript": f"Line {k}."}
        for s in range(n_speakers) for k in range(per_speaker)
    ]


def speakers(recs):
    return {r["speaker"] for r in recs}


def test_leave_one_speaker_out():
    recs = records()
    folds = make_folds(recs, "loso")
    assert [f.description for f in folds] == [f"speaker spk{s}" for s in range(6)]
    for fold in folds:
        assert len(speakers(fold.test)) == 1
        assert not speakers(fold.pool) & speakers(fold.test)
        assert len(fold.pool) + len(fold.test) == len(recs)


def test_leave_one_session_out_and_grouped_kfold():
    recs = records()
    sessions = make_folds(recs, "loso-session")
    assert [len(speakers(f.test)) for f in sessions] == [2, 2, 2]
    kfold = make_folds(recs, "kfold:3")
    assert len(kfold) == 3
    tested = [speakers(f.test) for f in kfold]
    assert set().union(*tested) == speakers(recs) and sum(map(len, tested)) == 6  # each speaker once


def test_given_splits():
    recs = records()
    for r in recs:
        r["split"] = {"spk0": "test", "spk1": "dev"}.get(r["speaker"], "train")
        r["fold"] = str(int(r["speaker"][-1]) % 2)
    (fold,) = make_folds(recs, "field:split")
    assert speakers(fold.test) == {"spk0"} and speakers(fold.val) == {"spk1"}
    assert split_val(fold, 0.2, 0) == (fold.pool, fold.val)  # a given validation part is kept
    by_fold = make_folds(recs, "field:fold")
    assert [f.description for f in by_fold] == ["fold=0", "fold=1"]


def test_folds_that_share_speakers_are_refused_unless_allowed():
    recs = records()
    for i, r in enumerate(recs):
        r["split"] = "test" if i % 3 == 0 else "train"
    with pytest.raises(SercliError, match="allow-speaker-overlap"):
        make_folds(recs, "field:split")
    assert make_folds(recs, "field:split", allow_speaker_overlap=True)
    with pytest.raises(SercliError, match="allow-speaker-overlap"):
        make_folds(records(n_speakers=2), "kfold:3")
    assert len(make_folds(records(n_speakers=2), "kfold:3", allow_speaker_overlap=True)) == 3
    with pytest.raises(SercliError, match="allow-speaker-overlap"):
        check_speakers([{"speaker": "a"}], [{"speaker": "a"}], allow=False)


def test_missing_fields_and_bad_specs():
    recs = records()
    del recs[3]["speaker"]
    with pytest.raises(SercliError, match="no 'speaker' field"):
        make_folds(recs, "loso")
    for spec in ("kfold:x", "kfold:1", "bogus", "field:"):
        with pytest.raises(SercliError):
            make_folds(records(), spec)


def test_validation_is_grouped_by_speaker_and_seeded():
    fold = make_folds(records(n_speakers=8), "loso")[0]
    train, val = split_val(fold, 0.2, seed=1)
    assert val and not speakers(train) & speakers(val)
    assert not speakers(val) & speakers(fold.test)
    assert split_val(fold, 0.2, seed=1) == (train, val)
    assert {r["emotion"] for r in val} == {"angry", "happy", "sad"}


def test_one_training_speaker_falls_back_to_utterances():
    fold = make_folds(records(n_speakers=2), "loso")[0]
    train, val = split_val(fold, 0.25, seed=0)
    assert len(val) == 2 and len(train) == 4


def test_holdout_checks_its_speakers():
    recs = records()
    fold = holdout(recs, ["spk0"], ["spk1"])
    assert speakers(fold.test) == {"spk0"} and speakers(fold.val) == {"spk1"}
    with pytest.raises(SercliError, match="no records of speaker"):
        holdout(recs, ["nobody"], [])
    with pytest.raises(SercliError, match="overlap"):
        holdout(recs, ["spk0"], ["spk0"])


def test_synthetic_text_that_is_a_test_transcript_is_dropped():
    assert normalise_text("  Hello,   WORLD! ") == normalise_text("hello world") == "hello world"
    test = [{"transcript": "Der Lappen liegt auf dem Eisschrank."}, {"text": "It's me"}]
    synthetic = [{"id": "a", "text": "der lappen liegt auf dem eisschrank"}, {"id": "b", "text": "its me"},
                 {"id": "c", "text": "It's me!"}, {"id": "d"}]
    kept, dropped = drop_leaking(synthetic, test)
    assert [r["id"] for r in dropped] == ["a", "c"]
    assert [r["id"] for r in kept] == ["b", "d"]
    assert drop_leaking(synthetic, [{"speaker": "x"}]) == (synthetic, [])
