"""Batch feature extraction into a FeatureStore: plan from headers, then stream.

The story, one file per stage:
  config   what a run makes and where (ExtractConfig, store metadata, device defaults)
  plan     1. plan each recording from its header (chunks for long ones); 2. batch segments
  compute  3. decode a batch, run the model, reduce each segment; 4. stitch a recording
  workers  3. where that runs: model replicas on CPU, decoders ahead of a GPU
This module runs them: planned batches stream through the workers, and a finished recording
is added to the current shard; shards become visible atomically (sercli.features.store), which
makes a killed run resumable. What a backbone declares for it (frame hop, ``num_frames``,
padding sensitivity, the longest input) is on ``sercli.base.Backbone``; audio is decoded by
``sercli.core.audio``.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from sercli.core.audio import audio_length, read_segment
from sercli.core.cluster import check_device
from sercli.core.errors import RecordError
from sercli.features.compute import Assembly, Part, compute, decode, extract_waveform, pool_frames
from sercli.features.config import (
    COMPUTE_DTYPES, POOLS, STORE_DTYPES, ExtractConfig, autocast, batch_seconds, check_pool,
    config_for, max_padding, parse_layers, store_meta, usable_cores, worker_count,
)
from sercli.features.plan import Item, Segment, batches, chunk_bounds, plan, plan_item
from sercli.features.workers import InProcess, Prefetch, Replicas, engine, start_worker_server

__all__ = [
    "COMPUTE_DTYPES", "POOLS", "STORE_DTYPES", "Assembly", "ExtractConfig", "InProcess", "Item", "Part",
    "Prefetch", "Replicas", "Segment", "audio_length", "autocast", "batch_seconds", "batches", "check_device",
    "check_pool", "chunk_bounds", "compute", "config_for", "decode", "engine", "extract_waveform", "extracted", "max_padding",
    "parse_layers", "plan", "plan_item", "pool_frames", "read_segment", "run_extraction", "start_worker_server",
    "store_meta", "usable_cores", "worker_count",
]


def run_extraction(
    backbone,
    pairs: list[tuple[str, str]],
    store,
    cfg: ExtractConfig,
    on_error: Callable[[str, str], None],
    on_progress: Callable[[int], None] = lambda n: None,
) -> None:
    """Extract ``pairs`` ((key, audio_path)) into ``store``.

    Keys become visible in the store's index only once their shard is on disk, so callers
    emit output records from the index after this returns.
    """
    check_pool(cfg.pool)
    parse_layers(cfg.layers, backbone.num_layers)  # bad layers fail before any work
    with store.writer(int(cfg.shard_mb * (1 << 20))) as writer:
        runtime = engine(backbone, cfg)  # workers start up while the headers are read
        try:
            for key, array in extracted(backbone, pairs, cfg, runtime, on_error, on_progress):
                try:
                    writer.add(key, array)
                except RecordError as exc:  # non-finite or misshapen: this record only
                    on_error(key, str(exc))
                on_progress(1)
        finally:
            runtime.close()


def extracted(
    backbone,
    pairs: list[tuple[str, str]],
    cfg: ExtractConfig,
    runtime,
    on_error: Callable[[str, str], None],
    on_progress: Callable[[int], None] = lambda n: None,
) -> Iterator[tuple[str, np.ndarray]]:
    """(key, features) of each recording of ``pairs`` as ``runtime`` (see ``engine``) finishes
    it; a recording that fails goes to ``on_error`` (and counts in ``on_progress``) instead.
    Used by ``run_extraction`` and by a cluster's workers (sercli.features.distributed)."""
    sr = backbone.sample_rate
    assemblies: dict[int, Assembly] = {}
    dead: set[int] = set()
    dtype = np.dtype(cfg.store_dtype)
    items, failed = plan(pairs, backbone, cfg)
    for key, msg in failed:
        on_error(key, msg)
        on_progress(1)
    planned = (batches(items, int(batch_seconds(cfg) * sr), backbone.padding_sensitive, max_padding(cfg))
               if items else [])
    jobs = [[(items[seg.item].path, sr, seg) for seg in batch] for batch in planned]
    for batch, parts in zip(planned, runtime.run(jobs)):
        for seg, part in zip(batch, parts):
            if seg.item in dead:
                continue
            item = items[seg.item]
            try:
                if isinstance(part, RecordError):
                    raise part
                asm = assemblies.setdefault(seg.item, Assembly(item, cfg.pool, dtype))
                if not asm.add(seg, part):
                    continue
            except RecordError as exc:  # this record only: the run goes on
                dead.add(seg.item)
                assemblies.pop(seg.item, None)
                on_error(item.key, str(exc))
                on_progress(1)
                continue
            assemblies.pop(seg.item, None)
            yield item.key, asm.result
