"""Cluster `threads`: sharded work on a pool of threads in this process (example plugin).

Not faster than sercli's own worker processes; it shows the whole `Cluster` contract in a
few lines: each thread builds its own copy of the worker once (``setup``), shards go to
whichever thread is free (a `train --cv` job is a shard too), and results come back
through ``on_result`` exactly once each.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from sercli.api import Cluster, Options, SercliError


class Threads(Cluster):
    name = "threads"
    description = "Runs --cluster work on threads of this process (example plugin): threads or threads://N."

    class Options(Options):
        pass

    def connect(self, address: str | None) -> None:
        size = (address or "").removeprefix("threads://") or "2"
        if not size.isdigit() or int(size) < 1:
            raise SercliError(f"--cluster {address}: expected threads or threads://N (N threads)")
        self.size = int(size)

    def map_shards(self, worker, shards: list[Any], *, workers: int | None = None, gpus: float = 0.0,
                   on_result: Any = None) -> None:
        local = threading.local()

        def run(shard):
            if not hasattr(local, "worker"):  # one copy per thread, set up once
                local.worker = copy.deepcopy(worker)
                local.worker.setup("cpu")
            return local.worker(shard)

        with ThreadPoolExecutor(max_workers=min(workers or self.size, max(len(shards), 1))) as pool:
            futures = {pool.submit(run, shard): i for i, shard in enumerate(shards)}
            for fut in as_completed(futures):
                on_result(futures[fut], fut.result())

    def close(self) -> None:
        pass
