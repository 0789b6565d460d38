"""`sercli extract --cluster`: the same extraction, its recordings cut into shards that a
cluster's workers extract, the results written here into the one feature store.

The driver (this process) plans what a local run plans (keys, resume), cuts the recordings
to do into shards of about equal audio length (``sercli.core.cluster.shards``, from the headers),
and hands ``ExtractShards`` to the `Cluster` plugin: each worker loads the backbone once and
returns, per shard, the features of each recording and the error of each that failed. Only
the driver writes the store, as shard results arrive, so a cluster run makes the store a local
run makes; a shard whose worker died is run again by the cluster, and a key is written once
whatever comes back twice.

Workers open the records' audio paths themselves: every machine of the cluster must see the
same files at the same (absolute) paths, a shared filesystem; ``sercli.core.records`` makes the
paths absolute when it reads a records file.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from sercli.core.audio import audio_length
from sercli.contract.cluster import ShardWorker
from sercli.core.errors import RecordError, SercliError
from sercli.features.extract import ExtractConfig, InProcess, check_pool, extracted, parse_layers

SHARD_SECONDS = 120.0  # audio per shard: a retried shard costs little, a worker is rarely idle
SHARD_RECORDS = 64  # at most this many recordings per shard (many short clips)


class ExtractShards(ShardWorker):
    """Extracts one shard ((key, audio path) pairs) on a worker: ``{"features": {key: array},
    "errors": {key: message}}``; the backbone loads once per worker, in ``setup``."""

    def __init__(self, backbone, cfg: ExtractConfig):
        self.backbone = backbone
        self.cfg = replace(cfg, workers=0, devices=None)  # the worker is the parallelism

    def setup(self, device: str) -> None:
        self.cfg = replace(self.cfg, device=device)
        self.backbone.load(device)

    def __call__(self, shard: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        features: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        runtime = InProcess(self.backbone, self.cfg, 0, load=False)
        for key, array in extracted(self.backbone, shard, self.cfg, runtime, errors.__setitem__):
            features[key] = array
        return {"features": features, "errors": errors}


def check_cluster_device(device: str) -> None:
    """--device with --cluster names what each worker uses (the driver may have no GPU)."""
    if device not in ("cpu", "cuda"):
        raise SercliError(f"--device {device!r} with --cluster: expected cpu or cuda "
                          "(each worker gets its own GPU; the cluster decides which)")


def shard_pairs(pairs: list[tuple[str, str]], sample_rate: int) -> tuple[list[list[tuple[str, str]]], list[float]]:
    """``pairs`` cut into shards of about SHARD_SECONDS of audio (from the headers; an
    unreadable header counts as nothing, its worker reports it), and each shard's seconds."""
    from sercli.core.cluster import shards

    def seconds(path: str) -> float:
        try:
            return audio_length(path, sample_rate) / sample_rate
        except RecordError:
            return 0.0

    with ThreadPoolExecutor(max_workers=8) as pool:  # headers wait on the disk, not the CPU
        sizes = list(pool.map(seconds, (p for _, p in pairs)))
    cut = shards(list(range(len(pairs))), sizes, SHARD_SECONDS, SHARD_RECORDS)
    return [[pairs[i] for i in shard] for shard in cut], [sum(sizes[i] for i in shard) for shard in cut]


def run_on_cluster(
    cluster,
    backbone,
    pairs: list[tuple[str, str]],
    store,
    cfg: ExtractConfig,
    on_error: Callable[[str, str], None],
    *,
    workers: int | None = None,
    what: str = "extract",
    on_shard: Callable[[int, Any], None] | None = None,
) -> None:
    """Extract ``pairs`` ((key, audio_path)) into ``store`` on ``cluster`` (a connected
    `sercli.base.Cluster`): ``workers`` workers (default: one per GPU with a cuda ``cfg.device``,
    else one per CPU), one progress bar. ``on_shard(i, result)`` sees each shard's result
    after it is written (tests use it to kill a worker mid-job)."""
    from sercli.core.cluster import ShardProgress

    check_pool(cfg.pool)
    parse_layers(cfg.layers, backbone.num_layers)  # bad layers fail before any work
    parts, seconds = shard_pairs(pairs, backbone.sample_rate)
    written: set[str] = set()
    with store.writer(int(cfg.shard_mb * (1 << 20))) as writer, \
            ShardProgress(what, len(parts), len(pairs)) as bar:

        def on_result(i: int, result: dict[str, dict[str, Any]]) -> None:
            for key, array in result["features"].items():
                if key in written:  # never twice into the store, whatever comes back
                    continue
                written.add(key)
                try:
                    writer.add(key, array)
                except RecordError as exc:  # non-finite or misshapen: this record only
                    on_error(key, str(exc))
            for key, msg in result["errors"].items():
                on_error(key, msg)
            bar.shard_done(len(parts[i]), seconds[i])
            if on_shard is not None:
                on_shard(i, result)

        gpus = 1.0 if cfg.device.startswith("cuda") else 0.0
        cluster.map_shards(ExtractShards(backbone, cfg), parts, workers=workers, gpus=gpus, on_result=on_result)
