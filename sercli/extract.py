"""Batch feature extraction into a FeatureStore: plan from headers, then stream.

1. Plan. Each file's header (soundfile.info) gives its length; no audio is decoded yet.
   A recording longer than ``chunk_seconds`` is cut into overlapping chunks aligned to the
   backbone's frame hop; each chunk keeps the frames nearest its centre, so the stitched
   output has exactly the frames the model would give the whole recording, and memory
   stays bounded however long the recording is.
2. Batch. Segments (whole recordings or chunks) sorted by length fill batches of at most
   ``batch_seconds`` of padded audio; on a CPU only with segments within ``max_padding`` (2%)
   of the batch's longest, as padding there costs more than batching saves.
   Padding-sensitive backbones only share a batch between segments of equal length, so
   batched output equals one-by-one output.
3. Run, streaming: only a few batches are decoded at any time.
   - On CPU, ``workers`` processes each decode a batch and run their own copy of the model
     on their share of the cores. Independent single-threaded replicas keep every core busy
     without the per-operation thread synchronisation of one multi-threaded model, which on
     small or shared machines (or vCPUs) costs more than it gains.
   - On a GPU, the model runs here while ``workers`` processes decode batches ahead of it.
   Workers are forked from a fork server that imported torch (and the backbone's
   ``worker_modules``) while this process planned, so the imports are paid once.
   Each segment comes back reduced: pooled, or the frames it keeps, or sums for pooling.
4. Store. A finished recording is added to the current shard; shards become visible
   atomically (sercli.features), which makes a killed run resumable.

A backbone may declare these (sercli.base.Backbone does not; without them a backbone sees
whole recordings, batched by length):
  hop_samples: int               samples per output frame (enables chunking)
  num_frames(n_samples) -> int   frames it outputs for ``n_samples`` of audio
  padding_sensitive: bool        its output changes when padded with longer inputs
  max_chunk_seconds: float       the longest input it accepts (caps ``chunk_seconds``)
(``Backbone.worker_modules``, which it does declare, lists what its workers import first.)
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from sercli.errors import RecordError, SercliError
from sercli.guards import backbone_failure, check_frames, check_sums, file_error, forward_each, to_store, too_short

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
    # CPU: model processes (None: one per core, at most 4); GPU: decoding processes (None: 2).
    # 0 runs everything in this process.
    workers: int | None = None
    chunk_seconds: float = 20.0
    chunk_overlap: float = 2.0
    compute_dtype: str | None = None  # None (float32) | "bf16" | "fp16": autocast
    shard_mb: float = 256.0


def parse_layers(spec: str, num_layers: int) -> list[int]:
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(num_layers))
    if spec == "last":
        return [num_layers - 1]
    try:
        idx = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise SercliError(f"--layers {spec!r}: expected all, last or comma-separated numbers") from None
    bad = [i for i in idx if not -num_layers <= i < num_layers]
    if bad or not idx:
        raise SercliError(f"--layers {spec!r}: this backbone has layers 0..{num_layers - 1}")
    return [i % num_layers for i in idx]


def pool_frames(feats, how: str):
    """(layers, frames, dim) tensor -> pooled (layers, 1, dim') tensor, or unchanged for 'none'."""
    import torch

    if how == "none":
        return feats
    mean = feats.mean(dim=1, keepdim=True)
    if how == "mean":
        return mean
    if how == "mean+std":
        std = feats.std(dim=1, keepdim=True, unbiased=False)
        return torch.cat([mean, std], dim=-1)
    raise SercliError(f"--pool {how!r}: expected none, mean or mean+std")


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
    if getattr(backbone, "hop_samples", None):
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


# -- 1. plan ---------------------------------------------------------------------------------

@dataclass
class Segment:
    item: int  # index into the plan's items
    start: int  # samples at the backbone's rate
    stop: int
    keep: tuple[int, int] | None = None  # local frames kept when stitching chunks
    offset: int = 0  # global frame of keep[0]


@dataclass
class Item:
    key: str
    path: str
    samples: int
    segments: list[Segment] = field(default_factory=list)
    frames: int = 0  # total frames after stitching (chunked items only)


def audio_length(path: str, sample_rate: int) -> int:
    """Samples ``path`` will have at ``sample_rate`` (from its header; RecordError if unreadable)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # LibsndfileError (a missing file too), RuntimeError
        raise file_error(path, exc) from None
    if info.frames <= 0:
        raise RecordError(f"audio file is empty: {path}")
    # torchaudio.functional.resample returns ceil(frames * new / orig) samples
    return -(-info.frames * sample_rate // info.samplerate)


def chunk_bounds(n: int, chunk: int, overlap: int, hop: int) -> list[tuple[int, int]]:
    """Hop-aligned (start, stop) chunks covering ``n`` samples; the last one ends at ``n``.

    Chunks advance by ``chunk - overlap``; the last starts on the hop grid at or before
    ``n - chunk``, so every chunk is at least ``chunk`` long and the tail gets full context.
    """
    if n <= chunk:
        return [(0, n)]
    step = chunk - overlap
    last = (n - chunk) // hop * hop
    starts = list(range(0, last, step)) + [last]
    return [(s, min(s + chunk, n)) if s != last else (s, n) for s in starts]


def plan_item(index: int, key: str, path: str, n: int, backbone, cfg: ExtractConfig) -> Item:
    item = Item(key, path, n)
    hop = getattr(backbone, "hop_samples", None)
    if hop and backbone.num_frames(n) < 1:
        raise too_short(backbone, n, path)
    limit = cfg.chunk_seconds
    if getattr(backbone, "max_chunk_seconds", None):
        limit = min(limit, backbone.max_chunk_seconds)
    chunk = int(limit * backbone.sample_rate) // hop * hop if hop else 0
    if not hop or n <= chunk:
        item.segments = [Segment(index, 0, n)]
        return item
    overlap = int(cfg.chunk_overlap * backbone.sample_rate) // hop * hop
    bounds = chunk_bounds(n, chunk, overlap, hop)
    frames = [backbone.num_frames(stop - start) for start, stop in bounds]
    # Cut between neighbours in the middle of their overlap: each kept frame has the most
    # context on both sides that either chunk offers.
    cuts = [0]
    for (s0, e0), (s1, _) in zip(bounds, bounds[1:]):
        cuts.append((s1 + e0) // 2 // hop)
    (s_last, _), f_last = bounds[-1], frames[-1]
    cuts.append(s_last // hop + f_last)
    for i, ((start, stop), nf) in enumerate(zip(bounds, frames)):
        first = start // hop
        a, b = cuts[i] - first, cuts[i + 1] - first
        if not 0 <= a < b <= nf:
            raise SercliError("--chunk-overlap is too small for this backbone's receptive field")
        item.segments.append(Segment(index, start, stop, (a, b), cuts[i]))
    item.frames = cuts[-1]
    return item


def plan(
    pairs: list[tuple[str, str]], backbone, cfg: ExtractConfig
) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items with their segments, and (key, message) for files whose header is unreadable."""
    from concurrent.futures import ThreadPoolExecutor

    def length(path: str):
        try:
            return audio_length(path, backbone.sample_rate)
        except RecordError as exc:
            return exc

    items: list[Item] = []
    failed: list[tuple[str, str]] = []
    # Header reads wait on the disk (or network), not the CPU: threads hide the latency.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for (key, path), n in zip(pairs, pool.map(length, (p for _, p in pairs))):
            try:
                if isinstance(n, RecordError):
                    raise n
                items.append(plan_item(len(items), key, path, n, backbone, cfg))
            except RecordError as exc:
                failed.append((key, str(exc)))
    return items, failed


# -- 2. batch --------------------------------------------------------------------------------

def batches(
    items: list[Item], max_samples: int, padding_sensitive: bool, max_padding: float = 1.0
) -> list[list[Segment]]:
    """Segments longest first, each recording's chunks together, grouped into batches.

    A batch holds at most ``max_samples`` of padded audio (one segment may exceed it alone),
    and only segments at least ``1 - max_padding`` times as long as its longest; for
    padding-sensitive backbones only segments of one length. Longest first so that parallel
    workers end together: the short batches come last and fill the gaps.
    """
    order = sorted(items, key=lambda it: (-(it.segments[0].stop - it.segments[0].start), it.segments[0].item))
    out: list[list[Segment]] = []
    cur: list[Segment] = []
    longest = 0
    for item in order:
        for seg in item.segments:
            n = seg.stop - seg.start
            mixed = cur and (n != longest if padding_sensitive else n < longest * (1 - max_padding))
            if cur and (mixed or max(longest, n) * (len(cur) + 1) > max_samples):
                out.append(cur)
                cur, longest = [], 0
            cur.append(seg)
            longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


# -- 3. run: decoding, the model, reducing each segment --------------------------------------

def read_segment(path: str, sample_rate: int, start: int, stop: int, whole: bool) -> np.ndarray:
    """Mono float32 samples [start, stop) of ``path`` at ``sample_rate`` (RecordError if bad).

    ``whole``: the segment is the whole recording; take what decodes even if the header's
    length was off. A chunk of a long recording is read by seeking, so it costs only its own
    samples (plus a margin for the resampling filter when the file has another rate).
    """
    import soundfile as sf

    from sercli.audio import load_audio

    if whole:
        return load_audio(path, sample_rate)
    try:
        info = sf.info(str(path))
        if info.samplerate == sample_rate:
            wav = _read_mono(path, start, stop)
        else:
            wav = _read_resampled(path, info.samplerate, info.frames, sample_rate, start, stop)
    except Exception as exc:  # LibsndfileError, RuntimeError: unreadable after all
        raise file_error(path, exc) from None
    if len(wav) != stop - start:
        raise RecordError(f"audio {path} is shorter than its header says")
    if not np.isfinite(wav).all():
        raise RecordError(f"audio has NaN or infinite samples: {path}")
    return np.ascontiguousarray(wav, dtype=np.float32)


def _read_mono(path: str, start: int, stop: int) -> np.ndarray:
    import soundfile as sf

    return sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)[0].mean(axis=1)


def _read_resampled(path: str, orig: int, frames: int, new: int, start: int, stop: int) -> np.ndarray:
    """Target-rate samples [start, stop) from a window of the source, resampled as
    ``sercli.audio.resample`` resamples the whole file: the window starts on a source sample
    that maps to a whole target sample, and reaches past the segment by more than the
    filter's half-width (torchaudio's sinc kernel, lowpass_filter_width 6, rolloff 0.99)."""
    from math import ceil, gcd

    from sercli.audio import resample

    g = gcd(orig, new)
    o, n = orig // g, new // g
    margin = 2 * (ceil(6 * o / (min(o, n) * 0.99)) + o)
    s0 = max(0, (start * o // n - margin) // o * o)
    s1 = min(frames, -(-stop * o // n) + margin)
    wav = resample(_read_mono(path, s0, s1), orig, new)
    first = start - s0 // o * n
    return wav[first : first + stop - start]


def decode(job: list[tuple[str, int, Segment]]) -> list[np.ndarray | RecordError]:
    """One decoded array (or its RecordError) per (path, sample rate, segment)."""
    out: list[np.ndarray | RecordError] = []
    for path, sr, seg in job:
        try:
            out.append(read_segment(path, sr, seg.start, seg.stop, seg.keep is None))
        except RecordError as exc:
            out.append(exc)
    return out


@dataclass
class Part:
    """What one segment contributes to its recording's stored array."""

    array: np.ndarray | None = None  # the whole result, or the frames a chunk keeps (store dtype)
    sums: tuple[np.ndarray, np.ndarray] | None = None  # a pooled chunk: float64 sum, sum of squares
    count: int = 0  # frames in ``sums``


def compute(backbone, segments: list[Segment], wavs: list, cfg: ExtractConfig) -> list[Part | RecordError]:
    """Run one batch (``wavs`` as ``decode`` returns them) and reduce each segment to its Part.
    A segment the backbone fails on, or whose features are not finite, gets its RecordError
    (sercli.guards): the others go through."""
    import torch

    layers = parse_layers(cfg.layers, backbone.num_layers)
    dtype = np.dtype(cfg.store_dtype)
    out: list[Part | RecordError] = list(wavs)
    ok = [i for i, w in enumerate(wavs) if not isinstance(w, RecordError)]
    if not ok:
        return out
    with torch.inference_mode(), _autocast(cfg):
        feats = forward_each(backbone, [wavs[i] for i in ok], cfg.device)
        for i, f in zip(ok, feats):
            try:
                out[i] = f if isinstance(f, RecordError) else _reduce(backbone, f, layers, segments[i], cfg, dtype)
            except Exception as exc:  # noqa: BLE001 - its features were unusable: this record only
                out[i] = backbone_failure(backbone, exc)
    return out


def _reduce(backbone, f, layers: list[int], seg: Segment, cfg: ExtractConfig, dtype) -> Part:
    f = f[layers].float()
    if seg.keep is None:  # the whole recording in one segment
        check_frames(f, backbone, cfg.compute_dtype)
        return Part(to_store(pool_frames(f, cfg.pool).cpu().numpy(), dtype))
    f = f[:, seg.keep[0] : seg.keep[1]]
    check_frames(f, backbone, cfg.compute_dtype)
    if cfg.pool == "none":
        return Part(to_store(f.cpu().numpy(), dtype))
    f = f.double()
    sums = (f.sum(1).cpu().numpy(), f.pow(2).sum(1).cpu().numpy())
    check_sums(sums)
    return Part(sums=sums, count=f.shape[1])


class InProcess:
    """The model runs in this process (GPUs, or ``workers=0``); ``decoders`` processes decode
    batches ahead of it."""

    def __init__(self, backbone, cfg: ExtractConfig, decoders: int):
        self.backbone, self.cfg = backbone, cfg
        self.pool = _process_pool(decoders, _init_decoder, (os.getpid(),)) if decoders else None
        self.ahead = 2 * decoders
        for _ in range(decoders):  # start them now (the pool starts one per submitted job)
            self.pool.submit(int)

    def run(self, jobs: list[list]) -> Iterator[list]:
        # The first batches are submitted before the weights load, so the two overlap.
        decoded = Prefetch(self.pool, decode, jobs, self.ahead) if self.pool else map(decode, jobs)
        self.backbone.load(self.cfg.device)
        for job, wavs in zip(jobs, decoded):
            yield compute(self.backbone, [seg for _, _, seg in job], wavs, self.cfg)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class Replicas:
    """``n`` processes, each with its own copy of the model on ``threads`` torch threads,
    each decoding and running whole batches."""

    def __init__(self, backbone_blob: bytes, cfg: ExtractConfig, n: int, threads: int):
        self.pool = _process_pool(n, _init_replica, (os.getpid(), backbone_blob, cfg, threads))
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


def _init_replica(main_pid: int, backbone_blob: bytes, cfg: ExtractConfig, threads: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it shuts the pool down
    _exit_with(main_pid)

    torch.set_num_threads(threads)
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


def start_worker_server(backbone, cfg: ExtractConfig) -> None:
    """Start, now, the process that will fork this run's workers, and have it import torch and
    what ``backbone`` declares in ``worker_modules``: the imports (seconds for torch and
    transformers) then run on another core while this process reads configs, headers and
    the store, and each worker starts as a fork of it instead of importing them again.
    Without it the workers still start, only later. A no-op where nothing runs in workers."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods() or _worker_count(cfg) == 0:
        return
    modules = ["sercli.fastexit", "torch", "sercli.extract", *getattr(backbone, "worker_modules", ()),
               type(backbone).__module__]
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(dict.fromkeys(modules)))
    _fork_server()


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
    ctx = multiprocessing.get_context("forkserver" if _fork_server() else "spawn")
    return ProcessPoolExecutor(n, mp_context=ctx, initializer=initializer, initargs=initargs)


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


# -- 4. store: stitching a recording's parts -------------------------------------------------

class Assembly:
    """Collects one recording's Parts into its stored array (pooled, or all its frames)."""

    def __init__(self, item: Item, pool: str, dtype):
        self.item, self.pool, self.dtype = item, pool, dtype
        self.missing = len(item.segments)
        self.frames: np.ndarray | None = None  # pool none, chunked: (L, T, D) in store dtype
        self.sums: list[np.ndarray] | None = None
        self.count = 0
        self.result: np.ndarray | None = None

    def add(self, seg: Segment, part: Part) -> bool:
        """True once every segment is in (then ``result`` holds the array)."""
        self.missing -= 1
        if seg.keep is None:
            self.result = part.array
            return True
        if self.pool == "none":
            if self.frames is None:
                L, _, D = part.array.shape
                self.frames = np.empty((L, self.item.frames, D), dtype=self.dtype)
            self.frames[:, seg.offset : seg.offset + part.array.shape[1]] = part.array
        else:
            self.sums = list(part.sums) if self.sums is None else [a + b for a, b in zip(self.sums, part.sums)]
            self.count += part.count
        if self.missing:
            return False
        if self.pool == "none":
            self.result = self.frames
        else:
            mean = self.sums[0] / self.count
            out = [mean]
            if self.pool == "mean+std":
                out.append(np.sqrt(np.maximum(self.sums[1] / self.count - mean**2, 0.0)))
            self.result = to_store(np.concatenate(out, axis=-1)[:, None], self.dtype)  # RecordError if too big
        return True


# -- the loop ---------------------------------------------------------------------------------

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
    if cfg.pool not in POOLS:
        raise SercliError(f"--pool {cfg.pool!r}: expected {', '.join(POOLS)}")
    parse_layers(cfg.layers, backbone.num_layers)  # a bad --layers fails before any work
    sr = backbone.sample_rate
    assemblies: dict[int, Assembly] = {}
    dead: set[int] = set()
    dtype = np.dtype(cfg.store_dtype)
    with store.writer(int(cfg.shard_mb * (1 << 20))) as writer:
        engine = _engine(backbone, cfg)  # workers start up while the headers are read
        try:
            items, failed = plan(pairs, backbone, cfg)
            for key, msg in failed:
                on_error(key, msg)
                on_progress(1)
            sensitive = bool(getattr(backbone, "padding_sensitive", False))
            planned = batches(items, int(batch_seconds(cfg) * sr), sensitive, max_padding(cfg)) if items else []
            jobs = [[(items[seg.item].path, sr, seg) for seg in batch] for batch in planned]
            for batch, parts in zip(planned, engine.run(jobs)):
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
                        writer.add(item.key, asm.result)
                    except RecordError as exc:  # this record only: the run goes on
                        dead.add(seg.item)
                        on_error(item.key, str(exc))
                    assemblies.pop(seg.item, None)
                    on_progress(1)
        finally:
            engine.close()


def extract_waveform(backbone, wav: np.ndarray, cfg: ExtractConfig, source: str = "<array>") -> np.ndarray:
    """The stored array for one in-memory waveform (at ``backbone.sample_rate``), made as
    ``run_extraction`` makes it (chunks, layers, pooling, store dtype), in this process;
    RecordError where ``run_extraction`` would skip it. Call ``backbone.load`` first."""
    item = plan_item(0, "waveform", source, len(wav), backbone, cfg)
    sensitive = bool(getattr(backbone, "padding_sensitive", False))
    asm = Assembly(item, cfg.pool, np.dtype(cfg.store_dtype))
    for batch in batches([item], int(batch_seconds(cfg) * backbone.sample_rate), sensitive):
        for seg, part in zip(batch, compute(backbone, batch, [wav[s.start : s.stop] for s in batch], cfg)):
            if isinstance(part, RecordError):
                raise part
            asm.add(seg, part)
    return asm.result


def _worker_count(cfg: ExtractConfig) -> int:
    """CPU: model replicas; GPU: decoding processes."""
    if cfg.workers is not None:
        return cfg.workers
    return min(usable_cores(), 4) if cfg.device == "cpu" else 2


def _engine(backbone, cfg: ExtractConfig):
    cores = usable_cores()
    n = _worker_count(cfg)
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


def max_padding(cfg: ExtractConfig) -> float:
    """How much shorter than a batch's longest segment the others may be (padding they get).
    On a CPU a batch saves little (a single segment already gives the matrix products enough
    rows) and padding costs its full compute: 2% there. On a GPU batching is the speed."""
    if cfg.max_padding is not None:
        return cfg.max_padding
    return 0.02 if cfg.device == "cpu" else 1.0


def batch_seconds(cfg: ExtractConfig) -> float:
    if cfg.batch_seconds is not None:
        return cfg.batch_seconds
    return 20.0 if cfg.device == "cpu" else 60.0


def usable_cores() -> int:
    """Cores this process may run on (torch counts the host's, too many in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _autocast(cfg: ExtractConfig):
    import torch

    if not cfg.compute_dtype:
        return nullcontext()
    if cfg.compute_dtype not in COMPUTE_DTYPES:
        raise SercliError(f"--dtype {cfg.compute_dtype!r}: expected {', '.join(COMPUTE_DTYPES)}")
    return torch.autocast(torch.device(cfg.device).type, dtype=getattr(torch, COMPUTE_DTYPES[cfg.compute_dtype]))


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
