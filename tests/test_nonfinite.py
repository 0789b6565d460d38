"""Non-finite numbers never get through: a record the backbone fails on, or whose features are
NaN, infinite or beyond the store's float16 range, is skipped with its reason (the rest of the
run goes on, in-process and in worker processes); stores of older versions that hold NaN are
refused by training and skipped by predict; predict never prints a non-finite probability."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from safetensors.numpy import save_file

from sercli.core import plugins as pl
from sercli.base import Backbone
from sercli.core.errors import RecordError
from sercli.features.extract import ExtractConfig, Segment, compute, extract_waveform, run_extraction, store_meta
from sercli.features.store import FeatureStore
from sercli_hf.random_models import save_random_model

from conftest import run_here, write_tone

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(path, samples, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32), 16000)
    return str(path)


def manifest(tmp_path, recs, name="in.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def stored_values_are_finite(store) -> bool:
    fs = FeatureStore(store)
    return all(np.isfinite(fs.get(k)).all() for k in fs.index()) if (store / "index.jsonl").exists() else True


def no_nan_in(text: str) -> bool:
    """Strict JSON: every line parses without NaN/Infinity."""
    for line in text.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-finite {c} printed: {line}"))
    return True


@pytest.mark.parametrize("backbone, workers", [("fbank", "0"), ("fbank", "1"), ("egemaps", "1")])
def test_a_clip_too_short_for_the_backbone_is_one_skipped_record(tmp_path, backbone, workers):
    recs = [{"id": "long", "audio": noise(tmp_path / "long.wav", 16000)},
            {"id": "blip", "audio": noise(tmp_path / "blip.wav", 80, seed=1)},  # 5 ms
            {"id": "mid", "audio": noise(tmp_path / "mid.wav", 12000, seed=2)}]
    proc = run_here("extract", manifest(tmp_path, recs), "--backbone", backbone, "--store", tmp_path / "st",
                    "--workers", workers)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [json.loads(line)["id"] for line in proc.stdout.splitlines()] == ["long", "mid"]
    line = next(line for line in proc.stderr.splitlines() if "blip" in line)
    assert "too short" in line and "(skipped)" in line
    assert "1 of 3 records could not be extracted" in proc.stderr
    assert stored_values_are_finite(tmp_path / "st") and len(FeatureStore(tmp_path / "st")) == 2


@pytest.mark.parametrize("workers", [0, 1])
def test_a_batch_the_backbone_fails_on_is_retried_one_record_at_a_time(tmp_path, workers):
    """fbank batches what is close in length (max_padding=1: everything); one bad input in
    the batch fails only its own record, in this process and in a worker process."""
    pairs = [("a", noise(tmp_path / "a.wav", 16000)), ("tiny", noise(tmp_path / "t.wav", 100, 1)),
             ("b", noise(tmp_path / "b.wav", 15000, 2))]
    errors = []
    store = FeatureStore(tmp_path / "st")
    cfg = ExtractConfig(store_dtype="float32", workers=workers, max_padding=1.0, batch_seconds=60.0)
    run_extraction(pl.create("backbone", "fbank"), pairs, store, cfg, on_error=lambda k, m: errors.append((k, m)))
    assert [k for k, _ in errors] == ["tiny"] and "too short for fbank" in errors[0][1]
    assert set(store.index()) == {"a", "b"}


def test_any_exception_of_a_backbone_fails_only_its_input(tmp_path):
    """A transformers model raising (not a RecordError) on a 100-sample input in a batch."""
    backbone = pl.create("backbone", f"hf:{save_random_model('wav2vec2-group', tmp_path / 'm')}")
    backbone.load()
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 100, 8000)]
    parts = compute(backbone, [Segment(i, 0, len(w)) for i, w in enumerate(wavs)], wavs,
                    ExtractConfig(pool="mean", store_dtype="float32"))
    assert isinstance(parts[1], RecordError) and "failed on this audio" in str(parts[1])
    assert "\n" not in str(parts[1])
    assert parts[0].array.shape == parts[2].array.shape == (3, 1, 32)


def scaled_model(folder, scale):
    """A tiny random wav2vec2 whose feature projection is scaled: every hidden state ~2e5 x
    ``scale`` / 1e5 (finite but beyond float16 at 1e5; NaN at 1e40)."""
    from safetensors.torch import load_file, save_file as save_torch

    folder = save_random_model("wav2vec2-layer", folder)
    weights = load_file(str(folder / "model.safetensors"))
    weights["feature_projection.projection.weight"] *= scale
    save_torch(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_nan_features_from_a_backbone_are_skipped_in_worker_processes(tmp_path):
    model = scaled_model(tmp_path / "m", 1e40)
    recs = [{"id": f"u{i}", "audio": noise(tmp_path / f"u{i}.wav", 16000, i)} for i in range(2)]
    proc = run_here("extract", manifest(tmp_path, recs), "--backbone", f"hf:{model}", "--store", tmp_path / "st",
                    "--workers", "1")
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert sum("non-finite features" in line and "(skipped)" in line for line in proc.stderr.splitlines()) == 2
    assert len(FeatureStore(tmp_path / "st")) == 0


@pytest.mark.parametrize("pool, chunk", [("none", 20.0), ("mean", 1.0)])
def test_values_beyond_float16_are_skipped_with_the_fix(tmp_path, pool, chunk):
    """Finite float32 features past 65504 would be inf in a float16 store: whole recordings,
    and pooled chunks of a long one; the same features fit a float32 store."""
    backbone = pl.create("backbone", f"hf:{scaled_model(tmp_path / 'm', 1e5)}")
    pairs = [("u", noise(tmp_path / "u.wav", 40000))]
    for dtype in ("float16", "float32"):
        errors = []
        cfg = ExtractConfig(pool=pool, store_dtype=dtype, workers=0, chunk_seconds=chunk, chunk_overlap=0.5)
        store = FeatureStore(tmp_path / f"st-{dtype}")
        run_extraction(backbone, pairs, store, cfg, on_error=lambda k, m: errors.append(m))
        if dtype == "float16":
            assert len(errors) == 1 and "--store-dtype float32" in errors[0] and len(store) == 0
            with pytest.raises(RecordError, match="float16 range"):  # predict's path says the same
                extract_waveform(backbone, sf.read(pairs[0][1], dtype="float32")[0], cfg)
        else:
            assert not errors and np.abs(store.get("u")).max() > 65504


def legacy_store(root, arrays: dict[str, np.ndarray]):
    """A store as an older sercli wrote it: it kept NaN, and its index rows have no "finite"."""
    backbone = pl.create("backbone", "fbank", {"n_mels": 8})
    root.mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(store_meta(backbone, ExtractConfig(pool="none", store_dtype="float32"))))
    save_file(arrays, str(root / "shard-00000.safetensors"))
    (root / "index.jsonl").write_text("".join(
        json.dumps({"key": k, "shard": "shard-00000.safetensors", "shape": list(v.shape)}) + "\n"
        for k, v in arrays.items()))


def legacy_corpus(tmp_path, nan_ids=()):
    rng = np.random.default_rng(0)
    arrays, recs = {}, []
    for s in range(4):
        for c, emo in enumerate(("angry", "sad")):
            for k in range(3):
                rid = f"s{s}{emo}{k}"
                x = (rng.normal(size=(1, 5, 8)) + 3 * c).astype(np.float32)
                if rid in nan_ids:
                    x[0, 2, 3] = np.nan
                arrays[rid] = x
                recs.append({"id": rid, "emotion": emo, "speaker": f"s{s}", "features": {
                    "store": str(tmp_path / "old"), "key": rid, "shape": list(x.shape)}})
    legacy_store(tmp_path / "old", arrays)
    return manifest(tmp_path, recs, "feats.jsonl"), recs


def test_training_refuses_nan_features_of_an_older_store(tmp_path):
    feats, _ = legacy_corpus(tmp_path, nan_ids={"s1sad2"})
    proc = run_here("train", feats, "--out", tmp_path / "run", "--test-speakers", "s3", "--epochs", "2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "s1sad2" in error[0] and str(tmp_path / "old") in error[0]
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_predict_skips_nan_features_and_refuses_a_nan_model(tmp_path):
    feats, recs = legacy_corpus(tmp_path)
    run = tmp_path / "run"
    run_here("train", feats, "--out", run, "--val-speakers", "s0", "--epochs", "2", check=True)
    # the same store, one record's values turned NaN (as an older sercli stored them)
    from safetensors.numpy import load_file

    arrays = load_file(str(tmp_path / "old" / "shard-00000.safetensors"))
    arrays["s2sad1"][0, 0, 0] = np.inf
    save_file(arrays, str(tmp_path / "old" / "shard-00000.safetensors"))
    proc = run_here("predict", run, feats)
    assert proc.returncode == 1 and no_nan_in(proc.stdout)
    assert len(proc.stdout.splitlines()) == len(recs) - 1
    assert "s2sad1" in proc.stderr and "(skipped)" in proc.stderr
    # a head with a NaN weight (trained on NaN by an older sercli) predicts nothing
    weights = load_file(str(run / "model.safetensors"))
    name = next(k for k, v in weights.items() if v.dtype.kind == "f" and v.ndim == 2)
    weights[name][0, 0] = np.nan
    save_file(weights, str(run / "model.safetensors"))
    proc = run_here("predict", run, feats)
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "NaN or infinite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_predict_skips_audio_too_short_for_the_backbone(tmp_path):
    recs = []
    for c, emo in enumerate(("angry", "sad")):
        for k in range(3):
            path = write_tone(tmp_path / "wav" / f"{emo}{k}.wav", seconds=0.3, freq=200 * (c + 1) + 15 * k)
            recs.append({"id": f"{emo}{k}", "audio": str(path), "emotion": emo, "speaker": f"s{k}"})
    feats = tmp_path / "feats.jsonl"
    run_here("extract", manifest(tmp_path, recs), "--backbone", "fbank", "-O", "n_mels=16", "--pool", "none",
            "--store", tmp_path / "st", "-o", feats, check=True)
    run_here("train", feats, "--out", tmp_path / "run", "--val-speakers", "s0", "--epochs", "2", check=True)
    blip = noise(tmp_path / "blip.wav", 50)
    proc = run_here("predict", tmp_path / "run", recs[0]["audio"], blip)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and no_nan_in(proc.stdout)
    assert len(proc.stdout.splitlines()) == 1
    assert "too short for fbank" in proc.stderr and "<array>" not in proc.stderr


def test_a_missing_audio_file_says_not_found(tmp_path):
    good = noise(tmp_path / "good.wav", 16000)
    missing = str(tmp_path / "nowhere.wav")
    proc = run_here("extract", manifest(tmp_path, [{"id": "g", "audio": good}, {"id": "m", "audio": missing}]),
                   "--backbone", "fbank", "--store", tmp_path / "st", "--workers", "0")
    assert proc.returncode == 1 and f"audio file not found: {missing}" in proc.stderr
    assert "System error" not in proc.stderr
    errors = []  # the engine itself, as library code calls it
    run_extraction(pl.create("backbone", "fbank"), [("m", missing)], FeatureStore(tmp_path / "st2"),
                   ExtractConfig(workers=0), on_error=lambda k, m: errors.append(m))
    assert errors == [f"audio file not found: {missing}"]


class Misshapen(Backbone):
    """A backbone whose output shape depends on the input's length (as a buggy plugin's might)."""

    name = "misshapen"
    sample_rate = 16000
    num_layers = 1
    level = "frame"  # no num_frames: a declared one that forward contradicts ends the run (test_boundary)

    def load(self, device="cpu"):
        pass

    def forward(self, wavs, device="cpu"):
        import torch

        shapes = {16000: (1, 10, 4), 16001: (10, 4), 16002: (1, 10, 5), 16003: (2, 10, 4), 16004: (1, 10, 4, 2),
                  16005: (1, 10, 0)}
        out = []
        for w in wavs:
            if len(w) == 16006:
                out.append(np.ones((1, 10, 4), np.float32))  # numpy, not a tensor
            else:
                out.append(torch.ones(shapes[len(w)]))
        return out


@pytest.mark.parametrize("pool", ["none", "mean"])
def test_features_of_the_wrong_shape_are_skipped_not_stored(tmp_path, pool):
    pairs = [(f"n{n}", noise(tmp_path / f"{n}.wav", n, seed=n)) for n in range(16000, 16007)]
    errors = {}
    store = FeatureStore(tmp_path / "st")
    run_extraction(Misshapen(), pairs, store, ExtractConfig(pool=pool, store_dtype="float32", workers=0),
                   on_error=lambda k, m: errors.setdefault(k, m))
    # dims 4 and 5 are both of the right shape: the first stored decides, the other is skipped
    (kept,) = store.index()
    other = ({"n16000", "n16002"} - {kept}).pop()
    assert set(errors) == {f"n{n}" for n in range(16000, 16007)} - {kept}
    assert "but the store holds dim" in errors[other] and "not a torch tensor" in errors["n16006"]
    assert all("shape" in errors[f"n{n}"] for n in (16001, 16003, 16004, 16005))
    with store.writer() as w:  # the store itself refuses what the head could not read
        for bad in (np.ones((10, 4), np.float32), np.ones((1, 0, 4), np.float32), np.ones((1, 3, 7), np.float32)):
            with pytest.raises(RecordError):
                w.add("x", bad)


def test_stored_values_are_checked_whatever_the_index_says(tmp_path):
    """A store whose index claims "finite" for infinities, or holds features without frames or
    of another shape (hand-made, damaged, a faulty tool): train and eval refuse it naming the
    record, predict skips it; nothing is printed from it."""
    feats, recs = legacy_corpus(tmp_path)
    run = tmp_path / "run"
    run_here("train", feats, "--out", run, "--test-speakers", "s3", "--epochs", "2", check=True)
    root = tmp_path / "odd"
    root.mkdir()
    (root / "meta.json").write_text((tmp_path / "old" / "meta.json").read_text())
    arrays = {"inf": np.full((1, 5, 8), np.inf, np.float32), "empty": np.zeros((1, 0, 8), np.float32),
              "flat": np.zeros((5, 8), np.float32), "wide": np.zeros((1, 5, 9), np.float32)}
    save_file(arrays, str(root / "shard-00000.safetensors"))
    (root / "index.jsonl").write_text("".join(json.dumps(
        {"key": k, "shard": "shard-00000.safetensors", "shape": list(v.shape), "finite": True}) + "\n"
        for k, v in arrays.items()))
    cases = (("inf", "NaN or infinite"), ("empty", "no frames"), ("flat", "not (layers, frames, dim)"),
             ("wide", "different sizes"))
    calls = {}
    for key, _ in cases:
        odd = {**recs[0], "id": key, "speaker": "s3", "features": {"store": str(root), "key": key}}
        data = manifest(tmp_path, recs + [odd], f"{key}.jsonl")
        calls[key, "train"] = ("train", data, "--out", tmp_path / f"run-{key}", "--test-speakers", "s3", "--epochs", "2")
        calls[key, "eval"] = ("eval", run, data, "--allow-speaker-overlap")
        calls[key, "predict"] = ("predict", run, data)
    done = {call: run_here(*args) for call, args in calls.items()}
    for key, words in cases:
        for proc in (done[key, "train"], done[key, "eval"]):
            assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
            assert f"'{key}'" in proc.stderr and words in proc.stderr
        proc = done[key, "predict"]
        assert proc.returncode == 1 and no_nan_in(proc.stdout) and len(proc.stdout.splitlines()) == len(recs)
        assert f"{key}:" in proc.stderr and "(skipped)" in proc.stderr
        assert not (tmp_path / f"run-{key}").exists()
