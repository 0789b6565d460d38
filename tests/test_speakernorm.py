"""`--norm speaker`: each speaker's features standardised with that speaker's own statistics,
over the part they are in, from features only (never labels); refusals in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sercli.learning import speakernorm
from sercli.learning.data import Examples
from sercli.core.errors import SercliError
from sercli.features.store import FeatureStore
from conftest import write_tone
from test_train_eval import CLASSES, invoke, make_corpus

ARGS = ["--epochs", "3", "--patience", "2", "--batch-size", "16", "--head", "mlp", "-O", "hidden=16"]


def _store(root: Path, speakers: dict[str, tuple[float, float, int]], seed: int = 0) -> list[dict]:
    """Records of 2-layer, 3-dim frame features: speaker -> (offset, scale, utterances)."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "store")
    store.init({"backbone": {"plugin": "toy", "options": {}}, "layers": "all", "layer_names": ["0", "1"],
                "pool": "none", "level": "frame", "dtype": "float32", "sample_rate": 16000})
    records = []
    with store.writer() as w:
        for spk, (offset, scale, n) in speakers.items():
            for k in range(n):
                x = (offset + scale * rng.normal(size=(2, int(rng.integers(2, 7)), 3))).astype(np.float32)
                key = f"{spk}-{k}"
                w.add(key, x)
                records.append({"id": key, "speaker": spk, "emotion": CLASSES[k % len(CLASSES)],
                                "features": {"store": str(store.root.resolve()), "key": key, "shape": list(x.shape)}})
    return records


def _examples(records: list[dict]) -> Examples:
    return Examples.build(records, {c: i for i, c in enumerate(CLASSES)}, 0)


def test_each_speaker_is_standardised_with_its_own_statistics(tmp_path):
    records = _store(tmp_path, {"a": (5.0, 3.0, 6), "b": (-2.0, 0.5, 7)})
    ex = speakernorm.apply(_examples(records), "test")
    for spk in ("a", "b"):
        # every frame of the speaker's utterances, per layer and dimension: mean 0, std 1
        frames = np.concatenate([ex.features(i) for i, r in enumerate(records) if r["speaker"] == spk], axis=1)
        assert np.allclose(frames.mean(1), 0, atol=1e-4) and np.allclose(frames.std(1), 1, atol=1e-3)
    # the statistics are the speaker's alone: normalising speaker a without b changes nothing
    only_a = [r for r in records if r["speaker"] == "a"]
    alone = speakernorm.apply(_examples(only_a), "test")
    for i in range(len(only_a)):
        assert np.array_equal(alone.features(i), ex.features(i))
    # and the raw features are not what comes out (the store is read, then standardised)
    from sercli.learning.data import read_features

    assert not np.allclose(read_features(records[0]), ex.features(0))
    # a subset or a sum of parts keeps each record's own statistics
    both = alone + speakernorm.apply(_examples([r for r in records if r["speaker"] == "b"]), "test")
    sub = both.subset([len(only_a)])
    assert np.array_equal(sub.features(0), ex.features(len(only_a)))


def test_labels_never_change_the_normalised_features(tmp_path):
    records = _store(tmp_path, {"a": (1.0, 2.0, 6), "b": (0.0, 1.0, 5)})
    relabelled = [{**r, "emotion": CLASSES[(CLASSES.index(r["emotion"]) + 1) % len(CLASSES)]} for r in records]
    first, second = (speakernorm.apply(_examples(rs), "test") for rs in (records, relabelled))
    assert first.labels != second.labels
    for i in range(len(records)):
        assert np.array_equal(first.features(i), second.features(i))


def test_too_few_utterances_or_no_speaker_is_refused(tmp_path):
    records = _store(tmp_path, {"a": (0.0, 1.0, 6), "few": (0.0, 1.0, speakernorm.MIN_UTTERANCES - 1)})
    with pytest.raises(SercliError, match=f"speaker 'few' has {speakernorm.MIN_UTTERANCES - 1} utterances") as exc:
        speakernorm.apply(_examples(records), "the test part")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("the test part")
    nameless = [{k: v for k, v in r.items() if k != "speaker"} if r["id"] == "a-3" else r for r in records]
    with pytest.raises(SercliError, match="record 'a-3' has no speaker"):
        speakernorm.apply(_examples(nameless), "the test part")


@pytest.fixture(scope="module")
def norm_run(tmp_path_factory):
    """A model trained with --norm speaker, tested on the held-out speakers spk3 and spk4."""
    root = tmp_path_factory.mktemp("norm")
    real, _ = make_corpus(root)
    run = root / "run"
    invoke("train", real, "--norm", "speaker", "--test-speakers", "spk3,spk4", "--out", run, *ARGS)
    return real, run


def test_test_speaker_statistics_come_from_its_features_only(norm_run):
    from sercli.evaluation.evaluate import job_examples, load_job
    from sercli.core.runfolder import jobs_of

    _, run = norm_run
    assert json.loads((run / "config.json").read_text())["train"]["norm"] == "speaker"
    job = load_job(jobs_of(run)[0])
    assert {r["speaker"] for r in job.records} == {"spk3", "spk4"}
    # the test speakers' labels changed: the same normalised features, other metrics
    rotated = [{**r, "emotion": CLASSES[(CLASSES.index(r["emotion"]) + 1) % len(CLASSES)]} for r in job.records]
    first = job_examples(job)
    job.records = rotated
    second = job_examples(job)
    assert first.labels != second.labels
    for i in range(len(first)):
        assert np.array_equal(first.features(i), second.features(i))
    # each test speaker's statistics come from its own utterances only
    spk3 = [r for r in job.records if r["speaker"] == "spk3"]
    job.records = spk3
    alone = job_examples(job)
    index = [i for i, r in enumerate(first.records) if r["speaker"] == "spk3"]
    assert all(np.array_equal(alone.features(k), first.features(i)) for k, i in enumerate(index))
    frames = np.concatenate([alone.features(k) for k in range(len(alone))], axis=1)
    assert np.allclose(frames.mean(1), 0, atol=1e-4) and np.allclose(frames.std(1), 1, atol=1e-3)


def test_predict_normalises_the_given_records_by_speaker(norm_run, tmp_path):
    _, run = norm_run
    evaluated = {p["id"]: p for p in map(json.loads, (run / "predictions.jsonl").read_text().splitlines())}
    # unlabelled records: predict groups them by speaker, as eval did with the test part
    unlabelled = tmp_path / "unlabelled.jsonl"
    recs = [json.loads(line) for line in (run / "test.jsonl").read_text().splitlines()]
    unlabelled.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "emotion"}) + "\n" for r in recs))
    predicted = {p["id"]: p for p in map(json.loads, invoke("predict", run, unlabelled).stdout.splitlines())}
    assert set(predicted) == set(evaluated)
    for rid, p in predicted.items():
        assert p["probabilities"] == evaluated[rid]["probabilities"]
    # one speaker with too few records, or a record without a speaker: refused in one line
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(r) + "\n" for r in [r for r in recs if r["speaker"] == "spk3"][:3]))
    with pytest.raises(SercliError, match="speaker 'spk3' has 3 utterances"):
        invoke("predict", run, few)
    with pytest.raises(SercliError, match="has no speaker"):  # refused before its audio is read
        invoke("predict", run, write_tone(tmp_path / "a.wav"))


def test_training_refuses_a_speaker_with_too_few_utterances(tmp_path):
    real, _ = make_corpus(tmp_path, per_class=1)  # 3 utterances per speaker
    with pytest.raises(SercliError, match="speaker 'spk.' has 3 utterances, --norm speaker needs at least"):
        invoke("train", real, "--norm", "speaker", "--cv", "loso", "--out", tmp_path / "run", *ARGS)
    assert not (tmp_path / "run").exists()


def test_a_dimension_constant_in_training_is_switched_off_not_blown_up():
    """A quarter of EmoDB, speaker-normalised, has float16 dimensions that are constant over the
    training data; dividing by their floored std sent validation values to 4e5 and the head onto
    one class. Such a dimension must read as about zero; the others keep their own scale."""
    from sercli.learning.data import Examples, layer_stats

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 2, 1, 8)).astype(np.float32) * 3
    feats[:, :, :, 3] = 0.5  # constant over the training data, in both layers

    class InMemory(Examples):
        def features(self, i):
            return feats[i]

    ex = InMemory([{"id": str(i)} for i in range(40)], [0] * 40, [0] * 40)
    mean, std = layer_stats(ex)
    unseen = rng.normal(size=(2, 1, 8)).astype(np.float32) * 3  # dimension 3 varies here
    z = (unseen - mean[:, None, :]) / std[:, None, :]
    assert np.abs(z[..., 3]).max() < 1e-6
    live = [d for d in range(8) if d != 3]
    assert np.allclose(std[:, live], feats[:, :, 0, live].std(0), rtol=1e-4)


def test_a_dimension_constant_within_a_speaker_up_to_rounding_reads_as_zero():
    """Whisper's input layer, mean-pooled over clips of one length (all of the shared EmoDB copy),
    has dimensions of value about 8e-3 that vary by about 1e-5 within a speaker, where PyTorch and
    onnxruntime differ by up to 1.7e-5. Divided by that std (above the 1e-5 floor), their noise
    became a feature of std 1 and moved the exported probabilities by 5e-3. Such a dimension must
    read as 0 whatever its noise; a dimension that varies, even by 2% of its value, keeps mean 0
    and std 1, under either implementation's noise."""
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(1, 3, 4)) for _ in range(8)]
    for x in clips:
        x[:, :, 1] = 8e-3 + 1.4e-5 * rng.normal(size=(1, 3))  # std/RMS 1.7e-3, as measured: noise
        x[:, :, 2] = 0.5 * x[:, :, 2] + 24.0  # varies by 2% of its value: a real feature
    arrays = [x.astype(np.float32) for x in clips]
    other = [(x + 1.7e-5 * rng.normal(size=x.shape)).astype(np.float32) for x in arrays]  # the other implementation
    outs = [speakernorm.apply_arrays([{"id": str(i), "speaker": "a"} for i in range(8)], a, "test") for a in (arrays, other)]
    for out in outs:
        frames = np.concatenate(out, axis=1)
        assert np.array_equal(frames[..., 1], np.zeros_like(frames[..., 1]))
        for d in (0, 2, 3):
            assert abs(frames[..., d].mean()) < 1e-4 and abs(frames[..., d].std() - 1) < 1e-3, d
    assert max(np.abs(a - b).max() for a, b in zip(*outs)) < 1e-2


def test_standardised_features_are_kept_per_examples_read_only_and_never_cross_parts(tmp_path):
    records = _store(tmp_path, {"a": (5.0, 3.0, 6), "b": (-2.0, 0.5, 7)})
    ex = speakernorm.apply(_examples(records), "test")
    first = ex.features(0)
    assert ex.features(0) is first  # every later epoch reads the kept array
    with pytest.raises(ValueError):
        first[...] = 0.0  # shared, so nobody may change it
    # another part (b without two of its utterances) has other statistics for b and its own arrays
    other_part = speakernorm.apply(_examples(records[:6] + records[6:11]), "test")
    assert other_part.features(0) is not first and np.array_equal(other_part.features(0), first)  # a's statistics alike
    assert not np.allclose(other_part.features(6), ex.features(6))  # b's are not
    from sercli.features.read import read_features

    assert np.allclose(speakernorm.normalise(read_features(records[0]), ex.norm[0]), first)
