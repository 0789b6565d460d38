"""The feature store: shards and index, and what it does with a killed run's leftovers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sercli.core.errors import SercliError
from sercli.features.store import INDEX, FeatureStore


def arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"k{i}": rng.standard_normal((3, 5 + i, 4)).astype(np.float16) for i in range(n)}


def test_round_trip_over_several_shards(tmp_path):
    store = FeatureStore(tmp_path)
    data = arrays(10)
    with store.writer(shard_bytes=300) as w:  # ~2 arrays per shard
        for k, v in data.items():
            w.add(k, v)
    assert len(list(tmp_path.glob("shard-*.safetensors"))) > 3
    fresh = FeatureStore(tmp_path)  # read back from disk, not the writer's cache
    assert set(fresh.index()) == set(data)
    for k, v in data.items():
        np.testing.assert_array_equal(fresh.get(k), v)
        assert fresh.index()[k]["shape"] == list(v.shape)


def test_meta_must_match(tmp_path):
    store = FeatureStore(tmp_path)
    store.init({"backbone": {"plugin": "fbank"}, "pool": "mean"})
    store.init({"backbone": {"plugin": "fbank"}, "pool": "mean"})  # same: fine
    with pytest.raises(SercliError, match="differs in: pool"):
        store.init({"backbone": {"plugin": "fbank"}, "pool": "none"})


def test_leftovers_of_a_killed_run_are_tidied(tmp_path):
    store = FeatureStore(tmp_path)
    data = arrays(4)
    with store.writer(shard_bytes=1) as w:  # one array per shard
        for k, v in data.items():
            w.add(k, v)
    # what a kill can leave: a half-written temp shard, a renamed shard whose index lines
    # never came, and a torn last index line
    (tmp_path / ".shard-00009.safetensors.tmp").write_bytes(b"half a shard")
    (tmp_path / "shard-00004.safetensors").write_bytes((tmp_path / "shard-00000.safetensors").read_bytes())
    with open(tmp_path / INDEX, "a") as fh:
        fh.write('{"key": "k9", "shard": "shard-0')
    assert set(FeatureStore(tmp_path).index()) == set(data)  # readers skip the torn line
    with FeatureStore(tmp_path).writer(shard_bytes=1) as w:
        w.add("k4", np.ones((1, 1, 4), np.float16))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert ".shard-00009.safetensors.tmp" not in names
    lines = (tmp_path / INDEX).read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["k0", "k1", "k2", "k3", "k4"]
    store = FeatureStore(tmp_path)
    assert set(store.index()) == set(data) | {"k4"}
    # the orphan is gone and the new shard took a fresh name
    assert {row["shard"] for row in store.index().values()} == {p for p in names if p.startswith("shard-")}


def test_one_writer_at_a_time(tmp_path):
    first = FeatureStore(tmp_path).writer()
    try:
        with pytest.raises(SercliError, match="being written by another sercli process"):
            FeatureStore(tmp_path).writer()
    finally:
        first.close()
    FeatureStore(tmp_path).writer().close()  # released


def test_only_finite_numbers_are_stored(tmp_path):
    """The writer refuses NaN and infinity (one record's error, see sercli.features.extract), and its
    index rows say their values are finite, so training need not read them to check."""
    from sercli.core.errors import RecordError

    with FeatureStore(tmp_path).writer() as w:
        for bad in (np.nan, np.inf):
            x = np.ones((1, 2, 4), np.float16)
            x[0, 1, 2] = bad
            with pytest.raises(RecordError, match="non-finite"):
                w.add("bad", x)
        w.add("good", np.ones((1, 2, 4), np.float16))
    index = FeatureStore(tmp_path).index()
    assert set(index) == {"good"} and index["good"]["finite"] is True
