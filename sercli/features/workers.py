"""Step 3's runtime: where batches are decoded and where the model runs, streaming (only a
few batches are decoded at any time).

- On CPU, ``workers`` processes each decode a batch and run their own copy of the model on
  their share of the cores (``Replicas``). Independent single-threaded replicas keep every
  core busy without the per-operation thread synchronisation of one multi-threaded model,
  which on small or shared machines (or vCPUs) costs more than it gains.
- On a GPU, the model runs here while ``workers`` processes decode batches ahead of it
  (``InProcess``).
- With ``--devices`` (``cfg.devices``), one replica per device, each in its own process with
  its own device (``Replicas``): batches, sized by padded audio, go to whichever replica is
  free, so the devices share the work by audio length.
Workers are forked from a fork server that imported torch (and the backbone's
``worker_modules``) while this process planned, so the imports are paid once. What runs in
a worker (``_init_replica``, ``_replica_job``, ``_init_decoder``, ``compute.decode``) is
found there by its module path, so it lives at module level.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections import deque
from typing import Any, Iterable, Iterator

from sercli.core.errors import RecordError, SercliError
from sercli.features.compute import Part, compute, decode
from sercli.features.config import ExtractConfig, usable_cores, worker_count
from sercli.features.plan import Segment


def engine(backbone, cfg: ExtractConfig):
    """The runtime for ``cfg``: ``run(jobs)`` yields each job's Parts in order; ``close()``."""
    cores = usable_cores()
    if cfg.devices:
        return Replicas(pickle.dumps(backbone), cfg, len(cfg.devices), max(1, cores // len(cfg.devices)),
                        devices=cfg.devices)
    n = worker_count(cfg)
    if cfg.device != "cpu":
        return InProcess(backbone, cfg, n)
    if n > 0:
        try:
            blob = pickle.dumps(backbone)
        except Exception:  # a third-party backbone holding something unpicklable
            blob = None
        if blob is not None:
            return Replicas(blob, cfg, n, max(1, cores // n))
    return InProcess(backbone, cfg, 0)


class InProcess:
    """The model runs in this process (GPUs, or ``workers=0``); ``decoders`` processes decode
    batches ahead of it."""

    def __init__(self, backbone, cfg: ExtractConfig, decoders: int, load: bool = True):
        self.backbone, self.cfg, self.load = backbone, cfg, load
        self.pool = _process_pool(decoders, _init_decoder, (os.getpid(),)) if decoders else None
        self.ahead = 2 * decoders
        for _ in range(decoders):  # start them now (the pool starts one per submitted job)
            self.pool.submit(int)

    def run(self, jobs: list[list]) -> Iterator[list]:
        # The first batches are submitted before the weights load, so the two overlap.
        decoded = Prefetch(self.pool, decode, jobs, self.ahead) if self.pool else map(decode, jobs)
        if self.load:  # False: the caller loaded the backbone already (a cluster's worker)
            self.backbone.load(self.cfg.device)
            self.load = False
        for job, wavs in zip(jobs, decoded):
            yield compute(self.backbone, [seg for _, _, seg in job], wavs, self.cfg)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class Replicas:
    """``n`` processes, each with its own copy of the model on ``threads`` torch threads,
    each decoding and running whole batches; with ``devices`` (one per process) each takes
    its own device from the list, else all run on ``cfg.device``."""

    def __init__(self, backbone_blob: bytes, cfg: ExtractConfig, n: int, threads: int,
                 devices: list[str] | None = None):
        import multiprocessing

        queue = None
        if devices:
            # each process takes one device as it starts (the initializer's arguments are
            # the same for all); the pool never replaces a process: a dead one breaks it
            queue = multiprocessing.get_context(_context_name()).SimpleQueue()
            for device in devices[:n]:
                queue.put(device)
        self.pool = _process_pool(n, _init_replica, (os.getpid(), backbone_blob, cfg, threads, queue))
        self.ahead = 2 * n
        # The pool starts a process per submitted job: start them all now, so they import
        # torch and load the weights while this process plans the batches.
        for _ in range(n):
            self.pool.submit(int)

    def run(self, jobs: list[list]) -> Iterator[list]:
        return iter(Prefetch(self.pool, _replica_job, jobs, self.ahead))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_replica: dict[str, Any] = {}


def _init_replica(main_pid: int, backbone_blob: bytes, cfg: ExtractConfig, threads: int, devices=None) -> None:
    from dataclasses import replace

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it shuts the pool down
    _exit_with(main_pid)

    torch.set_num_threads(threads)
    if devices is not None:
        cfg = replace(cfg, device=devices.get(), devices=None)
        if cfg.device.startswith("cuda"):
            torch.cuda.set_device(torch.device(cfg.device))
    backbone = pickle.loads(backbone_blob)
    backbone.load(cfg.device)
    _replica.update(backbone=backbone, cfg=cfg)


def _replica_job(job: list[tuple[str, int, Segment]]) -> list[Part | RecordError]:
    return compute(_replica["backbone"], [seg for _, _, seg in job], decode(job), _replica["cfg"])


def _init_decoder(main_pid: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it shuts the pool down
    _exit_with(main_pid)
    # torch only resamples here: one thread each, or they fight the model for cores
    torch.set_num_threads(1)


def _exit_with(main_pid: int) -> None:
    """A worker waits on a queue whose pipe its siblings keep open: if the main process is
    killed (SIGKILL, OOM killer) nothing would ever wake it, and the fork server (its
    parent) stays up while it lives. Watch the main process and leave when it is gone."""
    import threading

    def watch() -> None:
        while _alive(main_pid):
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-main").start()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a killed process its parent has not reaped yet is a zombie)."""
    if not os.path.isdir("/proc"):  # macOS: signal 0 only asks whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# what this process's fork server imported (empty: none runs, or it was started with no preload)
_preloaded: tuple[str, ...] = ()


def start_worker_server(backbone, cfg: ExtractConfig) -> None:
    """Start, now, the process that will fork this run's workers, and have it import torch and
    what ``backbone`` declares in ``worker_modules``: the imports (seconds for torch and
    transformers) then run on another core while this process reads configs, headers and
    the store, and each worker starts as a fork of it instead of importing them again.
    Without it the workers still start, only later. A no-op where nothing runs in workers."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods() or worker_count(cfg) == 0:
        return
    global _preloaded
    if _preloaded and set(backbone.worker_modules) <= set(_preloaded):  # its own module is imported on unpickling
        _fork_server()  # running, or restarted as it was
        return
    _stop_fork_server()  # one started for another backbone: each worker would import these itself
    modules = list(dict.fromkeys(["sercli.core.fastexit", "torch", __name__, *backbone.worker_modules,
                                  type(backbone).__module__]))
    multiprocessing.get_context("forkserver").set_forkserver_preload(modules)
    _preloaded = tuple(modules) if _fork_server() else ()


def _stop_fork_server() -> None:
    """Stop this process's fork server, if one runs (a process that extracts again with another
    backbone, as `sercli.api` or the tests' in-process commands do), before its workers start:
    the pools of earlier runs are closed by then. The next ``_fork_server`` starts a new one."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)  # CPython's own (its tests use it)
    if stop is not None and getattr(server, "_forkserver_pid", None) is not None:
        stop()


def _fork_server() -> bool:
    """Start the fork server if it is not running; False where it cannot run (no forkserver
    start method, or a sandbox that refuses its socket). Its standard output points at
    standard error: it and the workers it forks never write into the records on stdout, nor
    keep a pipe after ``sercli extract ... | ...`` open once this process has exited."""
    import multiprocessing
    import sys
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    # The server and the workers it forks inherit "ignore Ctrl-C" from their first instant:
    # a Ctrl-C is the main process's, which shuts the pool down.
    import threading

    main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        forkserver.ensure_running()
    except OSError:
        return False
    finally:
        if main:
            signal.signal(signal.SIGINT, sigint)
        os.dup2(saved, 1)
        os.close(saved)
    return True


def _process_pool(n: int, initializer, initargs):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Not plain fork: forking a process whose torch thread pools have started can deadlock.
    # The fork server (started by start_worker_server) has imported torch and run nothing.
    ctx = multiprocessing.get_context(_context_name())
    return ProcessPoolExecutor(n, mp_context=ctx, initializer=initializer, initargs=initargs)


def _context_name() -> str:
    return "forkserver" if _fork_server() else "spawn"


class Prefetch:
    """``fn(job)`` for each job in a process pool, at most ``ahead`` in flight, results in
    order. The first jobs are submitted at once (so the workers start now)."""

    def __init__(self, pool, fn, jobs: Iterable, ahead: int):
        self.pool, self.fn, self.jobs = pool, fn, iter(jobs)
        self.pending: deque = deque()
        for job in self.jobs:
            self.pending.append(pool.submit(fn, job))
            if len(self.pending) >= max(ahead, 1):
                break

    def __iter__(self) -> Iterator:
        from concurrent.futures.process import BrokenProcessPool

        while self.pending:
            try:
                result = self.pending.popleft().result()
            except BrokenProcessPool:
                raise SercliError(
                    "a worker process died (out of memory? its error, if any, is above); "
                    "try fewer --workers or a smaller --batch-seconds"
                ) from None
            job = next(self.jobs, None)
            if job is not None:
                self.pending.append(self.pool.submit(self.fn, job))
            yield result
