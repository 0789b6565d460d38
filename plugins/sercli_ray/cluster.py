"""The ``ray`` cluster: sharded work (extraction, synthesis, training jobs) on a pool of Ray actors.

Each actor builds the pickled `ShardWorker` once (``setup``: the model loads once per actor),
then runs shard after shard. The driver keeps one or two shards in flight per actor and
collects results with ``ray.wait``. An actor that dies (killed, out of memory, its node lost)
is restarted by Ray and its shards run again (``max_retries`` times each), the restart landing
wherever the cluster has room; an error raised by the work itself ends the run.

Workers read the records' audio paths themselves: the cluster's machines must see the same
files at the same paths (a shared filesystem), and have sercli installed. What they return
comes back to the driver, which alone writes the feature store and the records.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from pydantic import Field

from sercli.api import Cluster, Options, SercliError, ShardWorker

INSTALL = "--cluster ray needs Ray: pip install 'sercli[ray]'"
# settings and credentials the workers need, passed on from this process's environment
ENV_PREFIXES = ("OPENAI_", "AZURE_", "SPEECH_", "SERCLI_", "HF_", "TRANSFORMERS_")


class RayCluster(Cluster):
    name = "ray"
    description = "Ray: a local cluster (--cluster ray) or one at ray://HEAD:10001; one actor per GPU or CPU"

    class Options(Options):
        num_cpus: Optional[int] = Field(None, ge=1, description="CPUs of a local cluster (default: every core); ignored when joining one.")
        max_retries: int = Field(3, ge=0, description="Times a shard is run again after its worker dies.")

    started = False  # whether connect() started the Ray runtime (close() then shuts it down)

    def connect(self, address: str | None) -> None:
        ray = _import_ray()
        if ray.is_initialized():  # a caller (a test, a notebook) already joined a cluster: use it
            return
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
        common = dict(
            # stdout carries records: worker output stays in Ray's log files
            # (/tmp/ray/session_latest/logs), Ray's own messages go to stderr, warnings only
            log_to_driver=False, logging_level=logging.WARNING,
            runtime_env={"env_vars": env} if env else None,
        )
        try:
            if address is None:
                ray.init(num_cpus=self.options.num_cpus, include_dashboard=False, **common)
            else:
                ray.init(address=address, **common)
        except Exception as exc:  # noqa: BLE001  (Ray raises ConnectionError, RuntimeError, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = address or "a local Ray cluster"
            raise SercliError(f"--cluster: cannot start or reach {where}: {first} "
                              "(is `ray start --head` running there, and is its client port open?)") from None
        self.started = True

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    def slots(self, gpus: float) -> int:
        """How many workers the cluster holds now: one per ``gpus`` GPUs, or one per CPU."""
        import ray

        res = ray.cluster_resources()
        if gpus > 0:
            n = int(res.get("GPU", 0) // gpus)
            if n == 0:
                raise SercliError("the Ray cluster has no GPU: use --device cpu, or add GPU nodes to it")
            return n
        return max(1, int(res.get("CPU", 1)))

    def map_shards(self, worker: ShardWorker, shards: list[Any], *, workers: int | None = None,
                   gpus: float = 0.0, on_result: Any = None) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        if not shards:
            return
        room = self.slots(gpus)
        if workers and workers > room:  # the others would wait for room that never comes
            from sercli.core.log import warn

            each = f"{gpus:g} GPU" if gpus else "one CPU"
            warn(f"{workers} workers asked for: the Ray cluster has room for {room} ({each} each): using {room}")
        n = max(1, min(workers or room, room, len(shards)))
        retries = self.options.max_retries
        # Ray restarts a dead actor (setup runs again) and re-runs the shards it held
        # (max_task_retries); an exception the work raises is not retried.
        Actor = ray.remote(_Host).options(
            num_cpus=1, num_gpus=gpus or 0, max_restarts=-1 if retries else 0, max_task_retries=retries,
        )
        device = "cuda" if gpus else "cpu"
        actors = [Actor.remote(worker, device) for _ in range(n)]
        todo = list(range(len(shards)))[::-1]  # popped from the end: shard 0 first
        running: dict[Any, tuple[int, int]] = {}  # ref -> (shard, actor)
        load = [0] * n

        def submit(a: int) -> None:
            i = todo.pop()
            running[actors[a].run.remote(shards[i])] = (i, a)
            load[a] += 1

        try:
            for _ in range(2):  # two shards in flight per actor: the next is there as one ends
                for a in range(n):
                    if todo:
                        submit(a)
            while running:
                [ref], _ = ray.wait(list(running), num_returns=1)
                i, a = running.pop(ref)
                load[a] -= 1
                try:
                    result = ray.get(ref)
                except RayTaskError as exc:  # the work itself failed: that ends the run
                    cause = exc.cause if exc.cause is not None else exc
                    if isinstance(cause, SercliError):
                        raise SercliError(str(cause)) from None
                    raise SercliError(f"shard {i}: {type(cause).__name__}: {cause}") from None
                except RayActorError as exc:
                    raise SercliError(
                        f"shard {i}: its worker died {retries + 1} times "
                        f"({_first_line(exc)}); see the logs in /tmp/ray/session_latest/logs"
                    ) from None
                if on_result is not None:
                    on_result(i, result)
                if todo:
                    submit(a)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


class _Host:
    """A Ray actor around a ShardWorker: ``setup`` once, then one call per shard."""

    def __init__(self, worker: ShardWorker, device: str):
        self.worker, self.failed = worker, None
        try:
            worker.setup(device)
        except Exception as exc:  # noqa: BLE001  (a dead actor would hide it: raise it with the first shard)
            self.failed = exc

    def run(self, shard: Any) -> Any:
        if self.failed is not None:
            raise self.failed
        return self.worker(shard)

    def pid(self) -> int:
        return os.getpid()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SercliError(INSTALL) from None
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
