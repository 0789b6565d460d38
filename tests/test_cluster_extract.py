"""`sercli extract --cluster ray` and `--devices`: the features of a sharded run equal a local
run's, bit for bit, and a worker killed mid-job still leaves every record exactly once in the
store and the records (Ray restarts the actor and runs its shards again)."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest
import soundfile as sf

from sercli.core import plugins as pl
from sercli.core.errors import SercliError
from sercli.features.store import INDEX, FeatureStore

from conftest import run_cli, run_here

# the Ray modules run on one pytest-xdist worker (--dist loadgroup), on one local cluster (conftest's local_ray)
pytestmark = pytest.mark.xdist_group("ray")

N = 200


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """N short clips (0.2-1.5 s, tones in noise) and a local run's records and store."""
    root = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(7)
    lines = []
    for i in range(N):
        n = int(rng.uniform(0.2, 1.5) * 16000)
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.05 * rng.standard_normal(n)
        path = root / "wav" / f"u{i:03d}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(str(path), wav.astype(np.float32), 16000)
        lines.append(json.dumps({"id": f"u{i:03d}", "audio": str(path)}))
    recs = root / "recs.jsonl"
    recs.write_text("\n".join(lines) + "\n")
    run_here("extract", recs, "-b", "fbank", "-s", root / "local", "-o", root / "local.jsonl", check=True)
    return root


def records(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def assert_same_as_local(root, store, out=None, n=N):
    """Every record (of the first ``n``) once in the store's index file, features equal."""
    local, other = FeatureStore(root / "local"), FeatureStore(store)
    rows = [json.loads(line) for line in open(other.root / INDEX)]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == n
    assert set(keys) == {r["features"]["key"] for r in records(root / "local.jsonl")[:n]}
    for key in keys:
        assert np.array_equal(local.get(key), other.get(key)), key
    if out is not None:
        want = [(r["id"], r["features"]["key"], r["features"]["shape"]) for r in records(root / "local.jsonl")]
        got = [(r["id"], r["features"]["key"], r["features"]["shape"]) for r in records(out)]
        assert got == want


def test_devices_cpu_cpu_equals_a_local_run(corpus):
    """`--devices cpu,cpu`: one replica per entry, each in its own process (as cuda:0,cuda:1)."""
    out = corpus / "devices.jsonl"
    run_cli("extract", corpus / "recs.jsonl", "-b", "fbank", "-s", corpus / "devices", "--devices", "cpu,cpu",
            "-o", out, check=True)
    assert_same_as_local(corpus, corpus / "devices", out)


def test_cluster_ray_cli_equals_a_local_run_and_stdout_carries_only_records(corpus, local_ray):
    """A process of its own that starts its own local cluster, as a user's does."""
    pytest.importorskip("ray")
    proc = run_cli("extract", corpus / "recs.jsonl", "-b", "fbank", "-s", corpus / "ray", "--cluster", "ray",
                   "--workers", "2", env={"SERCLI_QUIET": ""})
    assert proc.returncode == 0, proc.stderr
    out = corpus / "ray.jsonl"
    out.write_text(proc.stdout)
    assert all(line.startswith('{"id"') for line in proc.stdout.splitlines())  # records, nothing else
    assert "shard" in proc.stderr  # the one progress view
    assert_same_as_local(corpus, corpus / "ray", out)
    # resuming (in this process, on the test run's cluster): nothing left to do, nothing written twice
    again = run_here("extract", corpus / "recs.jsonl", "-b", "fbank", "-s", corpus / "ray", "--cluster", "ray")
    assert again.returncode == 0 and "Resuming: 200 of 200" in again.stderr
    assert_same_as_local(corpus, corpus / "ray")


def host_pids() -> list[int]:
    """Processes of the plugin's Ray actors (Ray titles them ``ray::_Host...``)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if fh.read().startswith(b"ray::_Host"):
                        pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_a_killed_worker_still_leaves_every_record_once(corpus, local_ray, monkeypatch):
    from sercli.features.extract import ExtractConfig
    from sercli.features import distributed

    monkeypatch.setattr(distributed, "SHARD_RECORDS", 5)  # 40 shards: the job outlives the kill
    pairs = [(r["features"]["key"], r["audio"]) for r in records(corpus / "local.jsonl")]
    backbone = pl.create("backbone", "fbank")
    cfg = ExtractConfig(store_dtype=backbone.store_dtype)
    store = FeatureStore(corpus / "killed")
    store.init(FeatureStore(corpus / "local").meta())
    killed: list[int] = []
    seen: list[int] = []

    later: list[int] = []

    def on_shard(i, result):
        seen.append(i)
        if not killed:  # both actors have shards in flight: kill one of them
            pids = host_pids()
            assert len(pids) == 2
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        elif len(seen) == 40:
            later.extend(host_pids())

    cluster = pl.create("cluster", "ray", {"num_cpus": 2})
    cluster.connect(None)  # joins the running local cluster
    try:
        errors: dict[str, str] = {}
        distributed.run_on_cluster(cluster, backbone, pairs, store, cfg, errors.__setitem__, workers=2,
                                   on_shard=on_shard)
    finally:
        cluster.close()
    assert not errors
    assert killed and killed[0] not in later and len(later) == 2  # Ray restarted the killed actor
    assert sorted(seen) == list(range(len(seen))) and len(seen) == 40  # each shard once
    assert_same_as_local(corpus, corpus / "killed")
    from safetensors.numpy import load_file

    for shard in (corpus / "killed").glob("shard-*.safetensors"):
        load_file(str(shard))


def test_a_shard_delivered_twice_is_written_once(corpus, tmp_path):
    """The driver alone writes the store, and a key at most once, whatever a cluster returns."""
    from sercli.api import Cluster
    from sercli.features.extract import ExtractConfig
    from sercli.features.distributed import run_on_cluster

    class Twice(Cluster):  # runs the shards here, and reports each one twice
        def map_shards(self, worker, shards, *, workers=None, gpus=0.0, on_result=None):
            worker.setup("cpu")
            for i, shard in enumerate(shards):
                result = worker(shard)
                on_result(i, result)
                on_result(i, result)

    pairs = [(r["features"]["key"], r["audio"]) for r in records(corpus / "local.jsonl")][:30]
    backbone = pl.create("backbone", "fbank")
    store = FeatureStore(tmp_path / "twice")
    store.init(FeatureStore(corpus / "local").meta())
    run_on_cluster(Twice(), backbone, pairs, store, ExtractConfig(store_dtype=backbone.store_dtype),
                   lambda k, m: pytest.fail(m), what="extract")
    assert_same_as_local(corpus, tmp_path / "twice", n=30)


def test_without_ray_the_cli_says_how_to_install_it(corpus, tmp_path):
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    proc = run_cli("extract", corpus / "recs.jsonl", "-b", "fbank", "-s", tmp_path / "s", "--cluster", "ray",
                   env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: --cluster ray needs Ray: pip install 'sercli[ray]'"
    assert proc.stdout == ""


def test_bad_cluster_and_device_specs_fail_in_one_line(corpus, tmp_path):
    recs = corpus / "recs.jsonl"
    for i, (args, message) in enumerate([
        (["--cluster", "bogus"], "Unknown cluster 'bogus'"),
        (["--cluster", "ray", "--devices", "cpu,cpu"], "--devices and --cluster: choose one"),
        (["--device", "cuda:0", "--devices", "cpu,cpu"], "choose one"),
        (["--devices", "tpu:0"], "expected cpu, cuda or cuda:N"),
    ]):
        run = run_cli if i == 0 else run_here  # the first as a process of its own, the others in this one
        proc = run("extract", recs, "-b", "fbank", "-s", tmp_path / "s", *args)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "s").exists()  # nothing made before the error


def test_without_ray_the_plugin_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(SercliError, match=r"^--cluster ray needs Ray: pip install 'sercli\[ray\]'$"):
        pl.create("cluster", "ray", {}).connect(None)
