"""What an extraction run makes, and where it runs: settings, their defaults per device.

``store_meta`` is what a feature store made with a config holds (stores and trained heads
only mix features whose metadata are equal); ``config_for`` goes back from it. The defaults
that depend on the device (padded audio per batch, how much padding a batch may hold, how
many worker processes) are decided here, once, for the planner and the workers alike.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sercli.core.errors import SercliError

POOLS = ("none", "mean", "mean+std")
STORE_DTYPES = ("float16", "float32")
COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass
class ExtractConfig:
    layers: str = "all"  # "all" | "last" | "0,6,12"
    pool: str = "mean"  # "none" | "mean" | "mean+std"
    store_dtype: str = "float16"
    # padded audio per batch (None: 60 s on a GPU; 20 s on CPU, where bigger batches gain
    # nothing and each worker takes whole batches)
    batch_seconds: float | None = None
    # how much shorter than a batch's longest segment the others may be (None: see max_padding)
    max_padding: float | None = None
    device: str = "cpu"
    # `--devices`: one model replica per entry, each in its own process (cuda:0,cuda:1 or
    # cpu,cpu); ``device`` is then the first, which sets the batch defaults
    devices: list[str] | None = None
    # CPU: model processes (None: one per core, at most 4); GPU: decoding processes (None: 2).
    # 0 runs everything in this process.
    workers: int | None = None
    chunk_seconds: float = 20.0
    chunk_overlap: float = 2.0
    compute_dtype: str | None = None  # None (float32) | "bf16" | "fp16": autocast
    shard_mb: float = 256.0


def parse_layers(spec: str, num_layers: int, what: str = "layers") -> list[int]:
    """Layer numbers ``spec`` names ("all", "last", "0,6,12"); SercliError naming ``what``
    (the command line says "--layers") if it names none or a layer the backbone lacks."""
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(num_layers))
    if spec == "last":
        return [num_layers - 1]
    try:
        idx = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise SercliError(f"{what} {spec!r}: expected all, last or comma-separated numbers") from None
    bad = [i for i in idx if not -num_layers <= i < num_layers]
    if bad or not idx:
        raise SercliError(f"{what} {spec!r}: this backbone has layers 0..{num_layers - 1}")
    return [i % num_layers for i in idx]


def check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise SercliError(f"pool {pool!r}: expected {', '.join(POOLS)}")


def store_meta(backbone, cfg: ExtractConfig) -> dict[str, Any]:
    """What a feature store made with ``cfg`` holds: stores (and trained heads) only mix
    features whose metadata are equal."""
    names = backbone.layer_names()
    meta = {
        "backbone": backbone.identity(),
        "layers": cfg.layers,
        "layer_names": [names[i] for i in parse_layers(cfg.layers, backbone.num_layers)],
        "pool": cfg.pool,
        "level": backbone.level if cfg.pool == "none" else "utterance",
        "dtype": cfg.store_dtype,
        "sample_rate": backbone.sample_rate,
    }
    # Settings that change the numbers join only where they apply, so stores of backbones
    # that never chunk stay comparable across them.
    if backbone.hop_samples:
        meta["chunk"] = {"seconds": cfg.chunk_seconds, "overlap": cfg.chunk_overlap}
    if cfg.compute_dtype:
        meta["compute_dtype"] = cfg.compute_dtype
    return meta


def config_for(meta: dict[str, Any], device: str = "cpu") -> ExtractConfig:
    """The ExtractConfig that makes features like a store with ``meta`` holds (e.g. to
    extract one more file for prediction with ``extract_waveform``)."""
    chunk = meta.get("chunk", {})
    return ExtractConfig(
        layers=meta["layers"], pool=meta["pool"], store_dtype=meta.get("dtype", "float32"), device=device,
        chunk_seconds=chunk.get("seconds", 20.0), chunk_overlap=chunk.get("overlap", 2.0),
        compute_dtype=meta.get("compute_dtype"),
    )


# -- device defaults -------------------------------------------------------------------------

def batch_seconds(cfg: ExtractConfig) -> float:
    if cfg.batch_seconds is not None:
        return cfg.batch_seconds
    return 20.0 if cfg.device == "cpu" else 60.0


def max_padding(cfg: ExtractConfig) -> float:
    """How much shorter than a batch's longest segment the others may be (padding they get).
    On a CPU a batch saves little (a single segment already gives the matrix products enough
    rows) and padding costs its full compute: 2% there. On a GPU batching is the speed."""
    if cfg.max_padding is not None:
        return cfg.max_padding
    return 0.02 if cfg.device == "cpu" else 1.0


def worker_count(cfg: ExtractConfig) -> int:
    """CPU: model replicas; GPU: decoding processes."""
    if cfg.workers is not None:
        return cfg.workers
    return min(usable_cores(), 4) if cfg.device == "cpu" else 2


def usable_cores() -> int:
    """Cores this process may run on (torch counts the host's, too many in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def autocast(cfg: ExtractConfig):
    """The autocast context ``cfg.compute_dtype`` asks for (none: float32)."""
    import torch

    if not cfg.compute_dtype:
        return nullcontext()
    if cfg.compute_dtype not in COMPUTE_DTYPES:
        raise SercliError(f"compute dtype {cfg.compute_dtype!r}: expected {', '.join(COMPUTE_DTYPES)}")
    return torch.autocast(torch.device(cfg.device).type, dtype=getattr(torch, COMPUTE_DTYPES[cfg.compute_dtype]))


