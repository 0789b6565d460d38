"""`sercli synthesize --cluster SPEC`: the utterances a run plans are rendered by a cluster's
workers; this process plans, locks and writes every record, as a local run does.

The driver plans exactly as the local run (same locks, same resume rules, one render per cache
key), cuts the distinct utterances into small shards (a lost shard costs little) and hands them
to the cluster plugin. Each worker builds the TTS engine once (`SynthShard.setup`) and, per
utterance, skips a file that is already there, else renders it; engines write atomically, so a
file is either whole or absent. A shard whose worker dies is run again elsewhere and repeats
only the utterances whose audio had not landed: a paid request that was answered and written
is never sent again. The one that may be sent twice is one that was in flight on the worker at
the moment it died (its answer was lost with the worker).

Shared filesystem: the workers write into ``--audio-dir`` by its absolute path, so every
worker must see that folder at the same path as this process (one machine, or a shared mount).
The records file is written only here.

Per-worker concurrency is the engine's (``max_concurrency``, e.g. ``-O max_concurrency=4`` for
openai); ``--jobs`` sets the number of workers. Usage (requests, characters) is counted by each
worker and sent back with its shard results, so the final "Usage:" line adds up the cluster;
what a killed worker spent after its last returned shard is lost with it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from sercli.contract.cluster import ShardWorker
from sercli.core.errors import RecordError, SercliError
from sercli.core.log import info, warn


def _canonical(identity: dict[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)


class SynthShard(ShardWorker):
    """Renders shards of utterances on a worker. A shard is a list of
    ``(key, record, voice, path)`` (the input record: ``text`` and ``emotion``, or for an engine
    that reads audio the whole source record, whose audio the worker must see at that path);
    the result is ``{"jobs": {key: {"duration": s} or
    {"error": message}}, "usage": {...}, "worker": "host:pid"}``. A fatal error (SercliError, anything but a
    RecordError) stops the shard's other renders and is raised: it ends the run."""

    def __init__(self, engine: str, options: dict[str, Any], identity: str):
        self.engine, self.options, self.identity = engine, options, identity

    def setup(self, device: str) -> None:
        from sercli.core import plugins as pl
        from sercli.synthesis.synth import engine_identity

        self.tts = pl.create("tts", self.engine, self.options)
        self._lock = threading.Lock()
        self._reported: dict[str, int] = {}
        mine = _canonical(engine_identity(self.tts))
        if mine != self.identity:
            # its audio would be filed under the driver's cache keys: refuse, do not mix
            raise SercliError(
                f"TTS engine {self.engine!r} on this worker differs from the one on the driver "
                f"({mine} != {self.identity}); install the same sercli and engine on every node"
            )

    def __call__(self, shard: list[tuple[str, dict[str, Any], str, str]]) -> dict[str, Any]:
        from sercli.core.audio import duration
        from sercli.synthesis.synth import speak

        stop = threading.Event()  # set by the first fatal error: no later job sends a request

        def one(job):
            key, rec, voice, path = job
            if stop.is_set():
                return key, None
            target = Path(path)
            if not target.exists():  # a retried shard skips what already landed
                try:
                    speak(self.tts, rec, voice, target)
                except RecordError as exc:
                    return key, {"error": str(exc)}
                except BaseException:
                    stop.set()
                    raise
            return key, {"duration": round(duration(target), 4)}

        out: dict[str, Any] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(len(shard), self.tts.max_concurrency))) as pool:
            futures = [pool.submit(one, job) for job in shard]
            try:
                for fut in as_completed(futures):
                    key, outcome = fut.result()
                    out[key] = outcome
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return {"jobs": out, "usage": self._usage_delta(), "worker": f"{socket.gethostname()}:{os.getpid()}"}

    def _usage_delta(self) -> dict[str, int]:
        """What the engine spent since the last shard reported (each unit reported once, even
        when shards overlap on one worker)."""
        with self._lock:
            now = {k: v for k, v in (self.tts.usage() or {}).items() if isinstance(v, (int, float))}
            delta = {k: v - self._reported.get(k, 0) for k, v in now.items()}
            self._reported = now
        return {k: v for k, v in delta.items() if v}


def shard_size(tts) -> int:
    """Utterances per shard: twice what one worker renders at once, so a worker stays busy
    while a lost shard repeats little."""
    return 2 * max(1, int(tts.max_concurrency))


def render_on_cluster(spec: str, tts, engine: str, todo: list, prov: dict, output, jobs: int | None,
                      audio_dir: Path) -> tuple[int, dict[str, int]]:
    """Render ``todo`` (planned by `sercli.synthesis.synth.plan`/`pending`) on the cluster ``spec`` and
    write a record per job as shards come back; returns (failures, usage summed over the
    workers). Call it with the output and audio locks held."""
    from sercli.core.cluster import ShardProgress, open_cluster, shards
    from sercli.core.records import open_writer
    from sercli.synthesis.synth import _record, by_key, clean_stale_tmp, engine_identity, reads

    usage = {k: v for k, v in (tts.usage() or {}).items() if isinstance(v, (int, float))}
    groups = by_key(todo)
    if not groups:
        return 0, usage
    size = shard_size(tts)
    cut = shards(list(groups), [1.0] * len(groups), target=size, most=size)

    def given(rec: dict[str, Any]) -> dict[str, Any]:  # what the engine is handed of an input record
        return rec if reads(tts) == "audio" else {"text": rec["text"], "emotion": rec["emotion"]}

    payload = [[(key, given(groups[key][0].rec), groups[key][0].voice, str(groups[key][0].path.absolute()))
                for key in keys] for keys in cut]
    worker = SynthShard(engine, tts.options.model_dump(mode="json"), _canonical(engine_identity(tts)))
    failed = 0
    lock = threading.Lock()
    workers: set[str] = set()  # host:pid of the workers whose shards came back
    written: set[str] = set()  # cache keys whose records are out: never twice, whatever comes back

    with open_writer(output, append=True) as out, \
            ShardProgress(f"synthesize ({engine})", len(cut), len(todo)) as bar:

        def on_result(i: int, result: dict[str, Any]) -> None:
            nonlocal failed
            with lock:
                records = seconds = 0
                for key, outcome in result["jobs"].items():
                    group = groups[key]
                    if outcome is None or key in written:  # skipped after a fatal error; or delivered twice
                        continue
                    written.add(key)
                    records += len(group)
                    if "error" in outcome:
                        failed += len(group)
                        warn(f"{group[0].rec['id']} ({group[0].voice}): {outcome['error']}")
                        continue
                    seconds += outcome["duration"]
                    for job in group:
                        out.write(_record(job, engine, prov, outcome["duration"]))
                for k, v in result.get("usage", {}).items():
                    usage[k] = usage.get(k, 0) + v
                workers.add(result.get("worker"))
                bar.shard_done(records, seconds)

        with open_cluster(spec) as cluster:
            cluster.map_shards(worker, payload, workers=jobs, on_result=on_result)
    clean_stale_tmp(audio_dir)  # what a killed worker was writing (its process is gone)
    info(f"Cluster: {len(groups)} utterances in {len(cut)} shards on {len(workers)} "
         f"worker{'' if len(workers) == 1 else 's'}")
    return failed, usage
