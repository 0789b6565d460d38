"""Protocols from manifest fields, the validation part inside a fold, and the leakage guards."""

from __future__ import annotations

import pytest

from sercli.learning.cv import check_speakers, drop_leaking, holdout, make_folds, normalise_text, split_val
from sercli.core.errors import SercliError


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
    by_fold = make_folds(recs, "loo:fold")  # leave one value out: asked for by name
    assert [f.description for f in by_fold] == ["fold 0", "fold 1"]
    with pytest.raises(SercliError, match="only with split names.*loo:fold"):
        make_folds(recs, "field:fold")


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


def test_validation_split_keeps_every_emotion_in_training():
    """Only spk0 says 'sad': no seed may move all of it into the validation part."""
    from sercli.learning.cv import Fold

    pool = [{"id": f"{s}-{k}", "speaker": f"spk{s}",
             "emotion": (("angry", "happy", "sad") if s == 0 else ("angry", "happy"))[k % (3 if s == 0 else 2)]}
            for s in range(3) for k in range(6)]
    fold = Fold("fold-00", "test", pool, [])
    for seed in range(10):
        train, val = split_val(fold, 0.2, seed)
        assert {r["emotion"] for r in train} == {"angry", "happy", "sad"}, seed
        assert not speakers(train) & speakers(val)


def test_official_partition_names():
    from sercli.learning.cv import split_role

    for name in ("Train", "training", " TRAIN "):
        assert split_role(name) == "train"
    for name in ("Development", "dev", "val", "Valid", "validation"):
        assert split_role(name) == "val"
    for name in ("Test1", "Test2", "test3", "test", "Eval", "evaluation", "test_1"):
        assert split_role(name) == "test"
    for name in ("ses1", "0", "holdout", "spk3", "Session1", "attest"):
        assert split_role(name) is None


def test_msp_podcast_partitions_give_one_fold_per_test_partition():
    """Train trains, Development validates, Test1 and Test2 are two folds; no test record trains."""
    recs = records(n_speakers=6)
    names = ["Train", "Train", "Development", "Test1", "Test2", "test2"]  # any case
    for r in recs:
        r["split"] = names[int(r["speaker"][3:])]
    folds = make_folds(recs, "field:split")
    assert [f.description for f in folds] == ["split=Test1", "split=Test2/test2"]
    for fold, tested in zip(folds, ({"spk3"}, {"spk4", "spk5"})):
        assert speakers(fold.test) == tested
        assert speakers(fold.pool) == {"spk0", "spk1"} and speakers(fold.val) == {"spk2"}
        assert split_val(fold, 0.2, 0) == (fold.pool, fold.val)


def test_partitions_cannot_be_left_out_in_turn():
    recs = records(n_speakers=4)
    names = ["Train", "Development", "Test1", "Test2"]
    for r in recs:
        r["split"] = r["session"] = names[int(r["speaker"][3:])]  # as MSP-Podcast manifests had it
    for spec in ("loso-session", "loo:split"):
        with pytest.raises(SercliError, match="train on test partitions.*field:"):
            make_folds(recs, spec)
    assert len(make_folds(recs, "loo:speaker")) == 4  # an explicit leave-one-value-out on other values


def test_fields_that_are_not_partitions_are_refused():
    recs = records(n_speakers=4)
    for r in recs:
        r["split"] = {"spk0": "Test1", "spk1": "holdout"}.get(r["speaker"], "Train")
        r["only_train"] = "train"
        r["no_train"] = "dev" if r["speaker"] == "spk0" else "test"
    with pytest.raises(SercliError, match="mixes partition names .*holdout.*only with split names.*loo:split"):
        make_folds(recs, "field:split")
    with pytest.raises(SercliError, match="not partition names.*only with split names.*loo:session"):
        make_folds(recs, "field:session")
    with pytest.raises(SercliError, match="no test partition"):
        make_folds(recs, "field:only_train")
    with pytest.raises(SercliError, match="no training partition"):
        make_folds(recs, "field:no_train")


def test_one_partition_spelt_several_ways_is_one_fold():
    """Test_1, test-1, TEST01 and "Test 1" are one test partition (one fold, not four);
    Test and Test1, or test and eval, stay apart; testing is test."""
    from sercli.learning.cv import partition_key

    assert len({partition_key(v) for v in ("Test1", "test_1", "TEST-01", "Test 1", " test1 ")}) == 1
    assert len({partition_key(v) for v in ("Test", "Test1", "Eval", "Eval1")}) == 4
    assert partition_key("Testing") == partition_key("test")
    recs = records(n_speakers=6)
    names = ["Train", "Train", "Dev", "Test_1", "test-1", "TEST01"]
    for r in recs:
        r["split"] = names[int(r["speaker"][3:])]
    folds = make_folds(recs, "field:split")
    assert len(folds) == 1 and speakers(folds[0].test) == {"spk3", "spk4", "spk5"}
    assert sorted(folds[0].description[6:].split("/")) == ["TEST01", "Test_1", "test-1"]


def test_unknown_speakers_of_given_partitions_are_not_one_shared_speaker():
    """MSP-Podcast leaves many speakers unknown in Train and in each Test: its partitions keep
    them apart, so they do not count as one speaker '' in both (known speakers still do)."""
    recs = records(n_speakers=5)
    names = ["Train", "Train", "Development", "Test1", "Test2"]
    for i, r in enumerate(recs):
        r["split"] = names[int(r["speaker"][3:])]
        if i % 3 == 0:
            r["speaker"] = None
    folds = make_folds(recs, "field:split")
    assert len(folds) == 2 and all(f.given for f in folds)
    with pytest.raises(SercliError, match="'spk0'"):  # a known speaker in Train and Test1
        make_folds([dict(r, speaker="spk0") if r["split"] == "Test1" else r for r in recs], "field:split")
    with pytest.raises(SercliError, match="''"):  # other protocols still count '' as one speaker
        make_folds([dict(r, fold=r["split"][:4]) for r in recs], "loo:fold")
