"""`sercli extract` end to end: a killed run resumes cleanly, long and resampled recordings,
and features from a tiny transformers model train and evaluate a head."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from sercli.core import plugins as pl
from sercli.core.audio import load_audio
from sercli.features.extract import ExtractConfig, extract_waveform, run_extraction
from sercli.features.store import INDEX, FeatureStore
from sercli_hf.random_models import save_random_model

from conftest import run_here


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_random_model("wav2vec2-layer", tmp_path_factory.mktemp("hf") / "tiny")


def write_clips(folder, n, seed=0, lo=0.5, hi=1.5):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        path = folder / f"u{i}.wav"
        sf.write(str(path), (0.1 * rng.standard_normal(int(rng.uniform(lo, hi) * 16000))).astype(np.float32), 16000)
        recs.append({"id": f"u{i}", "audio": str(path)})
    return recs


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (workers are children of the fork server, its child)."""
    parents = {}
    for stat in os.scandir("/proc"):
        if stat.name.isdigit():
            try:
                with open(f"/proc/{stat.name}/stat") as fh:
                    parents[int(stat.name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        top = todo.pop()
        below = [p for p, parent in parents.items() if parent == top]
        out += below
        todo += below
    return out


@pytest.mark.slow
def test_killed_extraction_resumes_with_every_record_once(tiny, tmp_path):
    recs = write_clips(tmp_path / "wav", 30)
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    store = tmp_path / "st"
    args = ["extract", manifest, "--backbone", f"hf:{tiny}", "--store", store, "--layers", "all",
            "--pool", "mean+std", "--store-dtype", "float32", "--shard-mb", "0.001", "--batch-seconds", "3",
            "--workers", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "sercli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "SERCLI_QUIET": "1"})
    index = store / INDEX
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if index.exists() and len(index.read_text().splitlines()) >= 10:
            workers = descendants(proc.pid)
            proc.send_signal(signal.SIGKILL)  # a third of the way: ~10 of 30 records stored
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = len(FeatureStore(store).index())
    assert 0 < done_before < len(recs)
    # its worker processes (and the fork server) do not outlive it
    assert workers
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in workers):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)

    out = run_here(*args, check=True)  # the resumed run: in this process
    assert f"Resuming: {done_before} of {len(recs)}" in out.stderr
    written = [json.loads(line) for line in out.stdout.splitlines()]
    ids = [r["id"] for r in written]
    assert ids == [r["id"] for r in recs]  # every record once, in input order
    # each record's features are keyed by its id and its audio
    stored = {r["id"]: r["features"]["key"] for r in written}
    assert all(key.startswith(f"{rid}#") for rid, key in stored.items())
    # the index names each key once, every shard is whole, no temp files are left
    keys = [json.loads(line)["key"] for line in index.read_text().splitlines()]
    assert sorted(keys) == sorted(stored.values())
    assert not list(store.glob(".*.tmp"))
    from safetensors import safe_open

    for shard in store.glob("shard-*.safetensors"):
        with safe_open(str(shard), framework="np") as fh:
            for key in fh.keys():
                assert np.isfinite(fh.get_tensor(key)).all()
    # and the values are what an uninterrupted run computes
    backbone = pl.create("backbone", f"hf:{tiny}")
    backbone.load()
    cfg = ExtractConfig(layers="all", pool="mean+std", store_dtype="float32")
    fs = FeatureStore(store)
    for rec in recs[::7]:
        expected = extract_waveform(backbone, load_audio(rec["audio"]), cfg)
        np.testing.assert_allclose(fs.get(stored[rec["id"]]), expected, atol=1e-5)


def test_long_resampled_recording_is_chunked_to_the_full_frame_count(tiny, tmp_path):
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(3)
    sf.write(str(path), (0.1 * rng.standard_normal(int(7.3 * 44100))).astype(np.float32), 44100)
    backbone = pl.create("backbone", f"hf:{tiny}")
    cfg = ExtractConfig(pool="none", store_dtype="float32", chunk_seconds=2.0, chunk_overlap=0.5, workers=0)
    store = FeatureStore(tmp_path / "st")
    run_extraction(backbone, [("long", str(path))], store, cfg, on_error=lambda k, m: pytest.fail(m))
    wav = load_audio(path, 16000)
    feats = store.get("long")
    assert feats.shape == (3, backbone.num_frames(len(wav)), 32)
    np.testing.assert_allclose(feats, extract_waveform(backbone, wav, cfg), atol=1e-5)


@pytest.mark.slow
def test_extract_all_layers_then_train_and_eval(tiny, tmp_path):
    """Tiny random model, every layer stored: the head learns a weighting over the 3 layers."""
    t = np.arange(16000) / 16000
    recs = []
    for spk in ("s1", "s2", "s3", "s4"):
        for emotion, freq in (("angry", 880.0), ("sad", 180.0)):
            for k in range(4):
                path = tmp_path / "wav" / f"{spk}_{emotion}_{k}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                wav = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.03 * k) * t)
                sf.write(str(path), wav.astype(np.float32), 16000)
                recs.append({"id": path.stem, "audio": str(path), "emotion": emotion, "speaker": spk})
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    feats = tmp_path / "feats.jsonl"
    run_here("extract", manifest, "--backbone", f"hf:{tiny}", "--store", tmp_path / "st", "--layers", "all",
            "--pool", "mean", "-o", feats, check=True)
    assert all(json.loads(line)["features"]["shape"] == [3, 1, 32] for line in feats.read_text().splitlines())
    run = tmp_path / "run"
    run_here("train", feats, "--out", run, "--test-speakers", "s4", "--head", "mlp", "--epochs", "30", "--patience", "30", check=True)
    config = json.loads((run / "config.json").read_text())
    assert config["head"]["num_layers"] == 3 and config["features"]["layer_names"] == ["0", "1", "2"]
    from safetensors.numpy import load_file

    assert load_file(str(run / "model.safetensors"))["layer_logits"].shape == (3,)
    metrics = json.loads(run_here("eval", run, check=True).stdout)
    assert metrics["pooled"]["n"] == 8 and metrics["pooled"]["UA"] > 0.5  # above chance on two classes


def test_decoders_ahead_of_an_in_process_model(tiny, tmp_path):
    """The GPU pipeline (decoding processes feeding a model in this process), run on CPU."""
    from sercli.features.extract import InProcess, batches, config_for, plan, store_meta

    recs = write_clips(tmp_path / "wav", 6, seed=1, hi=3.0)
    pairs = [(r["id"], r["audio"]) for r in recs]
    backbone = pl.create("backbone", f"hf:{tiny}")
    cfg = ExtractConfig(pool="mean+std", store_dtype="float32", batch_seconds=4.0, chunk_seconds=2.0, chunk_overlap=0.5)
    # what predict needs to make features like a store's: the settings that change the numbers
    made = config_for(store_meta(backbone, cfg))
    assert (made.layers, made.pool, made.store_dtype, made.chunk_seconds, made.chunk_overlap) == (
        cfg.layers, cfg.pool, cfg.store_dtype, cfg.chunk_seconds, cfg.chunk_overlap)
    items, failed = plan(pairs, backbone, cfg)
    planned = batches(items, 4 * 16000, backbone.padding_sensitive)
    jobs = [[(items[s.item].path, 16000, s) for s in batch] for batch in planned]
    results = {}
    for decoders in (2, 0):
        engine = InProcess(backbone, cfg, decoders)
        try:
            results[decoders] = list(engine.run(jobs))
        finally:
            engine.close()
    assert not failed and len(results[2]) == len(planned) > 1
    for parts2, parts0 in zip(results[2], results[0]):
        for a, b in zip(parts2, parts0):
            if a.array is not None:
                np.testing.assert_array_equal(a.array, b.array)
            else:
                np.testing.assert_array_equal(a.sums[0], b.sums[0])


def test_a_fork_server_started_for_another_backbone_is_restarted_with_this_ones_imports(tiny):
    """One process that extracts twice (`sercli.api`, the tests' in-process commands): the fork
    server the first backbone started did not import what the second one's workers need, so it is
    replaced by one that does (else each worker imports transformers itself, seconds each); a
    backbone that declares nothing new in ``worker_modules`` keeps the running one."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import forkserver

    from sercli.features import workers

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver start method here")
    cfg = ExtractConfig(workers=1)
    fbank, hf = pl.create("backbone", "fbank"), pl.create("backbone", f"hf:{tiny}")
    workers._stop_fork_server()
    workers._preloaded = ()
    workers.start_worker_server(fbank, cfg)
    first = forkserver._forkserver._forkserver_pid
    assert "torch" in forkserver._forkserver._preload_modules
    workers.start_worker_server(fbank, cfg)
    assert first is not None and forkserver._forkserver._forkserver_pid == first  # nothing new: kept
    workers.start_worker_server(hf, cfg)
    second = forkserver._forkserver._forkserver_pid
    assert second not in (None, first) and not os.path.exists(f"/proc/{first}")
    assert set(hf.worker_modules) <= set(forkserver._forkserver._preload_modules)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        assert pool.submit(os.getppid).result() == second  # workers are forked from the new one
    workers.start_worker_server(fbank, cfg)  # what fbank's workers need, the new one has imported
    assert forkserver._forkserver._forkserver_pid == second


def test_cpu_batches_only_take_segments_close_to_the_longest():
    """On a CPU padding costs its full compute: a batch takes a segment only if it is within
    max_padding of the batch's longest (2% by default there), on a GPU any length."""
    from sercli.features.extract import Item, Segment, batches, max_padding

    lengths = [10_000, 9_900, 9_700, 9_000, 9_000]
    items = [Item(f"k{i}", "-", n, [Segment(i, 0, n)]) for i, n in enumerate(lengths)]
    cpu = batches(items, 10**9, padding_sensitive=False, max_padding=max_padding(ExtractConfig(device="cpu")))
    assert [[s.stop for s in b] for b in cpu] == [[10_000, 9_900], [9_700], [9_000, 9_000]]
    gpu = batches(items, 10**9, padding_sensitive=False, max_padding=max_padding(ExtractConfig(device="cuda")))
    assert [[s.stop for s in b] for b in gpu] == [lengths]
