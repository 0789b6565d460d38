"""Work past this process (`--cluster NAME[://ADDRESS]`, `--devices`): the plumbing commands
share, whatever engine a `sercli.base.Cluster` plugin wraps.

- ``open_cluster`` turns a ``--cluster`` value into a connected plugin (``ray`` starts a
  local cluster, ``ray://head:10001`` joins one) and leaves it when the command ends.
- ``shards`` cuts work into pieces of about equal audio length, so workers finish together
  and a retried shard costs little.
- ``ShardProgress`` is the one progress view of a cluster job on stderr: shards done, records
  done and audio hours per second.
- ``parse_devices`` reads ``--devices cuda:0,cuda:1`` or ``--devices all``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from sercli.core.errors import SercliError


def cluster_name(spec: str) -> tuple[str, str | None]:
    """``"ray"`` -> ("ray", None): a local cluster; ``"ray://head:10001"`` -> ("ray",
    "ray://head:10001"): the plugin is named by the scheme, the address passed whole."""
    spec = spec.strip()
    name, sep, rest = spec.partition("://")
    if not name or (sep and not rest):
        raise SercliError(f"--cluster {spec!r}: expected NAME (a local cluster) or NAME://ADDRESS, e.g. ray://head:10001")
    return name, spec if sep else None


@contextmanager
def open_cluster(spec: str, options: dict[str, Any] | None = None) -> Iterator[Any]:
    """The connected `Cluster` plugin ``spec`` names; it is closed when the block ends."""
    from sercli.core import plugins as pl

    name, address = cluster_name(spec)
    cluster = pl.create("cluster", name, options or {})
    cluster.connect(address)
    try:
        yield cluster
    finally:
        cluster.close()


def shards(items: Sequence[Any], sizes: Sequence[float], target: float, most: int | None = None) -> list[list[Any]]:
    """``items`` (in order) cut into consecutive shards of about ``target`` total size each
    (an item larger than ``target`` is a shard of its own); with ``most``, never more than
    that many items in one shard."""
    out: list[list[Any]] = []
    current: list[Any] = []
    total = 0.0
    for item, size in zip(items, sizes):
        if current and (total + size > target or (most is not None and len(current) >= most)):
            out.append(current)
            current, total = [], 0.0
        current.append(item)
        total += float(size)
    if current:
        out.append(current)
    return out


def parse_devices(spec: str | None) -> list[str] | None:
    """``--devices``: ``cuda:0,cuda:1``, ``all`` (every visible GPU) or ``cpu,cpu`` (one
    replica per entry, which is also how the GPU path is tested without GPUs); None if unset."""
    if spec is None:
        return None
    spec = spec.strip()
    if spec == "all":
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise SercliError("--devices all: this machine has no CUDA device (use --device cpu or --workers N)")
        return [f"cuda:{i}" for i in range(n)]
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    if not devices:
        raise SercliError(f"--devices {spec!r}: expected all or a comma-separated list such as cuda:0,cuda:1")
    for d in dict.fromkeys(devices):
        check_device(d)
    return devices


def device_list(device: str, devices: str | None, workers: int | None = None) -> list[str] | None:
    """``--devices`` checked against ``--device`` (default cpu) and ``--workers``: the devices,
    or None when ``--devices`` is unset. ``--device cuda`` goes with any list of cuda devices;
    anything else (``--device cuda:1 --devices cuda:0,cuda:1``) is refused in one line."""
    names = parse_devices(devices)
    if names is None:
        return None
    if device != "cpu" and not (device == "cuda" and all(d.startswith("cuda") for d in names)):
        raise SercliError(f"--device {device} and --devices {devices}: choose one (--devices alone names every device)")
    if workers is not None:
        raise SercliError("--devices runs one replica per device: drop --workers")
    return names


class ShardProgress:
    """One progress bar on stderr for a sharded job: shards and records done, audio hours
    processed per second of wall time (a GPU farm's figure of merit)."""

    def __init__(self, what: str, n_shards: int, n_records: int):
        from sercli.core.log import progress

        self.bar = progress()
        self.task = self.bar.add_task(what, total=n_records)
        self.n_shards, self.done_shards = n_shards, 0
        self.audio_s, self.start = 0.0, time.monotonic()
        self.what = what

    def __enter__(self) -> "ShardProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def shard_done(self, records: int, audio_seconds: float = 0.0) -> None:
        self.done_shards += 1
        self.audio_s += audio_seconds
        rate = self.audio_s / 3600 / max(time.monotonic() - self.start, 1e-9)
        self.bar.update(self.task, advance=records, description=(
            f"{self.what}: shard {self.done_shards}/{self.n_shards}"
            + (f", {rate:.3f} h audio/s" if self.audio_s else "")))


def check_device(device: str) -> None:
    if device == "cpu":
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type != "cuda":
        raise SercliError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise SercliError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SercliError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
