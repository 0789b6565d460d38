"""The feature store keys features by record id and audio content: audio that changed under
an id is extracted again (and said so), two manifests that reuse an id for different audio
keep their own features, and a copied (re-dated, moved) file still finds its features."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from sercli.core import plugins as pl
from sercli.core.audio import load_audio
from sercli.features.extract import ExtractConfig, extract_waveform, store_meta
from sercli.features.store import FeatureStore

from conftest import run_here, write_tone

ARGS = ["--backbone", "fbank", "-O", "n_mels=16", "--store-dtype", "float32", "--workers", "0"]


def extract(tmp_path, recs, store, name="in.jsonl"):
    manifest = tmp_path / name
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    proc = run_here("extract", manifest, *ARGS, "--store", store, check=True)
    return {json.loads(line)["id"]: json.loads(line)["features"]["key"] for line in proc.stdout.splitlines()}, proc


@pytest.fixture(scope="module")
def fbank():
    backbone = pl.create("backbone", "fbank", {"n_mels": 16})
    backbone.load()
    return backbone


def features_of(fbank, path):
    return extract_waveform(fbank, load_audio(path), ExtractConfig(store_dtype="float32"))


def test_changed_audio_is_extracted_again_and_copies_are_not(tmp_path, fbank):
    first = tmp_path / "first"
    recs = [{"id": f"u{i}", "audio": str(write_tone(first / f"u{i}.wav", freq=200.0 + 100 * i))} for i in range(3)]
    store = tmp_path / "st"
    keys, _ = extract(tmp_path, recs, store)
    # the corpus is copied elsewhere (new paths, new mtimes) and one file is re-recorded
    second = tmp_path / "second"
    shutil.copytree(first, second)
    write_tone(second / "u1.wav", freq=900.0)
    moved = [{"id": r["id"], "audio": str(second / f"{r['id']}.wav")} for r in recs]
    again, proc = extract(tmp_path, moved, store)
    assert "Resuming: 2 of 3" in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "changed since it was extracted" in line]
    assert len(warnings) == 1 and "u1" in warnings[0]
    assert again["u0"] == keys["u0"] and again["u2"] == keys["u2"] and again["u1"] != keys["u1"]
    fs = FeatureStore(store)
    np.testing.assert_allclose(fs.get(again["u1"]), features_of(fbank, second / "u1.wav"), atol=1e-6)
    assert not np.allclose(fs.get(again["u1"]), fs.get(keys["u1"]))


def test_two_manifests_reusing_an_id_keep_their_own_features(tmp_path, fbank):
    a = {"id": "x", "audio": str(write_tone(tmp_path / "a" / "x.wav", freq=220.0))}
    b = {"id": "x", "audio": str(write_tone(tmp_path / "b" / "x.wav", freq=880.0))}
    store = tmp_path / "st"
    key_a, _ = extract(tmp_path, [a], store, "a.jsonl")
    key_b, _ = extract(tmp_path, [b], store, "b.jsonl")
    key_a2, proc = extract(tmp_path, [a], store, "a.jsonl")  # A again: still there, not redone
    assert key_a == key_a2 != key_b and "Resuming: 1 of 1" in proc.stderr
    fs = FeatureStore(store)
    np.testing.assert_allclose(fs.get(key_a["x"]), features_of(fbank, a["audio"]), atol=1e-6)
    np.testing.assert_allclose(fs.get(key_b["x"]), features_of(fbank, b["audio"]), atol=1e-6)


def test_a_store_that_did_not_record_the_audio_is_not_trusted(tmp_path, fbank):
    """A store of an older sercli keyed by id alone: its features may be of other audio."""
    recs = [{"id": f"u{i}", "audio": str(write_tone(tmp_path / f"u{i}.wav", freq=300.0 + 50 * i))} for i in range(2)]
    store = tmp_path / "st"
    store.mkdir()
    meta = store_meta(pl.create("backbone", "fbank", {"n_mels": 16}), ExtractConfig(store_dtype="float32"))
    (store / "meta.json").write_text(json.dumps(meta))
    stale = {r["id"]: np.zeros((1, 1, 16), np.float32) for r in recs}
    save_file(stale, str(store / "shard-00000.safetensors"))
    (store / "index.jsonl").write_text("".join(
        json.dumps({"key": k, "shard": "shard-00000.safetensors", "shape": [1, 1, 16]}) + "\n" for k in stale))
    keys, proc = extract(tmp_path, recs, store)
    assert "2 records in" in proc.stderr and "extracting them again" in proc.stderr
    fs = FeatureStore(store)
    for rec in recs:
        assert keys[rec["id"]] != rec["id"]
        np.testing.assert_allclose(fs.get(keys[rec["id"]]), features_of(fbank, rec["audio"]), atol=1e-6)


def test_a_damaged_store_is_named(tmp_path):
    """A torn shard or a damaged meta.json is named in one line by train, eval and predict;
    index lines that are not rows the store wrote are ignored (their keys are not there)."""
    from test_train_eval import make_corpus

    real, _ = make_corpus(tmp_path / "c")
    run = tmp_path / "run"
    run_here("train", real, "--test-speakers", "spk0", "--out", run, "--epochs", "2", "--head", "mlp", "-O", "hidden=8", check=True)
    store = tmp_path / "c" / "store"
    shard = store / "shard-00000.safetensors"
    good = shard.read_bytes()
    shard.write_bytes(good[:1000])
    for args in (("train", real, "--out", tmp_path / "again", "--epochs", "2"),
                 ("eval", run, real, "--allow-speaker-overlap"), ("predict", run, real)):
        proc = run_here(*args)
        assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
        assert f"{shard} (feature " in proc.stderr and "damaged" in proc.stderr, proc.stderr
    shard.write_bytes(good)
    meta = store / "meta.json"
    meta.write_text(meta.read_text()[:20])
    for args in (("train", real, "--out", tmp_path / "again", "--epochs", "2"), ("predict", run, real)):
        proc = run_here(*args)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(f"Error: {meta} is damaged")
    assert not (tmp_path / "again").exists()
    index = FeatureStore(tmp_path / "odd")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "index.jsonl").write_text('[1, 2]\n{"key": 3}\n"text"\n{"shard": "x"}\n')
    assert index.index() == {}
