"""The cluster family (`--cluster NAME`, hook ``register_clusters``): sharded work past this
process."""

from __future__ import annotations

from typing import Any

from sercli.contract.common import Plugin


class ShardWorker:
    """Work a `Cluster` runs on its workers: built once per worker, on that worker's machine
    (``setup``: load the model, open the client), then called once per shard. It must pickle
    (it travels to the workers), so keep it to settings and build the heavy parts in ``setup``.
    ``__call__`` returns the shard's result (it travels back, so keep it to arrays and plain
    data); it must not depend on which worker runs it, since a shard whose worker dies is run
    again on another."""

    def setup(self, device: str) -> None:
        """Called once on the worker before its first shard; ``device`` is ``cpu`` or the GPU
        the cluster gave this worker (``cuda``: the worker sees only its own)."""

    def __call__(self, shard: Any) -> Any:
        raise NotImplementedError


class Cluster(Plugin):
    """Runs sharded work past this process: `--cluster NAME` or `--cluster NAME://ADDRESS`
    on `extract`, `synthesize` and `train --cv` (built in: `ray`).

    sercli splits the records into shards and calls ``map_shards``; the results come back to
    this process, which alone writes the feature store and the records, so what a cluster run
    makes is what a local run makes. Folds x seeds of `train --cv` are shards of one job each
    (a job writes its own run folder; a re-run job seeds itself and rewrites it). A cluster
    needs no joblib backend: joblib's ray backend re-runs nothing when a worker dies, while
    ``map_shards`` must.
    """

    def connect(self, address: str | None) -> None:
        """Join the cluster at ``address`` (the whole ``--cluster`` value, e.g.
        ``ray://head:10001``), or start a local one when None. SercliError (one line, with
        the fix) when the library is missing or the cluster cannot be reached."""
        raise NotImplementedError

    def map_shards(self, worker: ShardWorker, shards: list[Any], *, workers: int | None = None,
                   gpus: float = 0.0, on_result: Any = None) -> None:
        """Run ``worker(shard)`` for every shard on up to ``workers`` workers (default: one per
        GPU when ``gpus`` > 0, else one per CPU), each holding ``gpus`` GPUs, each calling
        ``worker.setup`` once. ``on_result(i, result)`` is called in this process as shard
        ``i`` finishes, exactly once per shard, in any order. A shard whose worker dies is run
        again on another worker; an exception raised by ``worker(shard)`` ends the run."""
        raise NotImplementedError

    def close(self) -> None:
        """Leave the cluster (shut down a local one this object started)."""
