"""The scarce-data protocol (--real-fraction) and the real-vs-synthetic language check."""

from __future__ import annotations

from collections import Counter

import pytest

from sercli.core.errors import SercliError
from sercli.learning.scarce import keep_fraction, language_mismatch


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


# -- the protocol in a run: only the training part shrinks ---------------------------------------

def test_plan_splits_shrink_the_training_part_only(tmp_path):
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
    for (i, seed), (train, val) in splits.items():
        full_train, full_val = split_val(folds[i], plan.val_fraction, seed)
        assert val == full_val  # the validation part is untouched
        assert {r["id"] for r in train} <= {r["id"] for r in full_train}
        assert not {r["id"] for r in train} & {r["id"] for r in folds[i].test}
        kept, full = cells(train), cells(full_train)
        assert set(kept) == set(full) and all(1 <= kept[k] and abs(kept[k] - n / 2) <= 1 for k, n in full.items())
        assert len(train) == round(len(full_train) / 2)
    assert splits[(0, 0)][0] != splits[(0, 1)][0]  # each seed draws its own subset


def test_train_records_the_fraction_and_warns_on_a_language_mismatch(tmp_path, cli):
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
