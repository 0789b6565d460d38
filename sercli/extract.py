"""Batch feature extraction into a FeatureStore: plan from headers, then stream.

1. Plan. Each file's header (soundfile.info) gives its length; no audio is decoded yet.
   A recording longer than ``chunk_seconds`` is cut into overlapping chunks aligned to the
   backbone's frame hop; each chunk keeps the frames nearest its centre, so the stitched
   output has exactly the frames the model would give the whole recording, and memory
   stays bounded however long the recording is.
2. Batch. Segments (whole recordings or chunks) sorted by length fill batches of at most
   ``batch_seconds`` of padded audio. Padding-sensitive backbones only share a batch between
   segments of equal length, so batched output equals one-by-one output.
3. Stream. Worker processes decode and resample batches a few ahead of the model, so decoding
   overlaps compute and only those batches are in memory.
4. Store. A finished recording is pooled (or kept as frames) and added to the current shard;
   shards become visible atomically (sercli.features), which makes a killed run resumable.

A backbone may declare these (sercli.base.Backbone does not; without them a backbone sees
whole recordings, batched by length):
  hop_samples: int               samples per output frame (enables chunking)
  num_frames(n_samples) -> int   frames it outputs for ``n_samples`` of audio
  padding_sensitive: bool        its output changes when padded with longer inputs
  max_chunk_seconds: float       the longest input it accepts (caps ``chunk_seconds``)
"""

from __future__ import annotations

import os
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from sercli.errors import RecordError, SercliError

POOLS = ("none", "mean", "mean+std")
STORE_DTYPES = ("float16", "float32")
COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass
class ExtractConfig:
    layers: str = "all"  # "all" | "last" | "0,6,12"
    pool: str = "mean"  # "none" | "mean" | "mean+std"
    store_dtype: str = "float16"
    batch_seconds: float = 60.0
    device: str = "cpu"
    workers: int = 2  # decoding processes; 0 decodes in this process
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
    except FileNotFoundError:
        raise RecordError(f"audio file not found: {path}") from None
    except Exception as exc:  # LibsndfileError / RuntimeError for corrupt or empty files
        raise RecordError(f"cannot decode audio {path}: {exc}") from None
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
        raise RecordError(f"audio is too short for this backbone ({n / backbone.sample_rate * 1000:.0f} ms): {path}")
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

def batches(items: list[Item], max_samples: int, padding_sensitive: bool) -> list[list[Segment]]:
    """Segments in length order, each recording's chunks together, grouped into batches.

    A batch holds at most ``max_samples`` of padded audio (one segment may exceed it alone);
    for padding-sensitive backbones a batch only holds segments of one length.
    """
    order = sorted(items, key=lambda it: (it.segments[0].stop - it.segments[0].start, it.segments[0].item))
    out: list[list[Segment]] = []
    cur: list[Segment] = []
    longest = 0
    for item in order:
        for seg in item.segments:
            n = seg.stop - seg.start
            mixed = padding_sensitive and cur and n != cur[0].stop - cur[0].start
            if cur and (mixed or max(longest, n) * (len(cur) + 1) > max_samples):
                out.append(cur)
                cur, longest = [], 0
            cur.append(seg)
            longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


# -- 3. stream: decoding in worker processes ------------------------------------------------

def read_segment(path: str, sample_rate: int, start: int, stop: int, whole: bool) -> np.ndarray:
    """Mono float32 samples [start, stop) of ``path`` at ``sample_rate`` (RecordError if bad).

    ``whole``: the segment is the whole recording; take what decodes even if the header's
    length was off. Files at the target rate are read by seeking, so a chunk of a long
    recording costs only its own samples; others are decoded and resampled whole.
    """
    import soundfile as sf

    from sercli.audio import load_audio

    if whole:
        return load_audio(path, sample_rate)
    try:
        if sf.info(str(path)).samplerate == sample_rate:
            wav = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)[0].mean(axis=1)
        else:
            wav = load_audio(path, sample_rate)[start:stop]
    except RecordError:
        raise
    except Exception as exc:
        raise RecordError(f"cannot decode audio {path}: {exc}") from None
    if len(wav) != stop - start:
        raise RecordError(f"audio {path} is shorter than its header says")
    if not np.isfinite(wav).all():
        raise RecordError(f"audio has NaN or infinite samples: {path}")
    return np.ascontiguousarray(wav, dtype=np.float32)


def decode_batch(tasks: list[tuple[str, int, int, int, bool]]) -> list[np.ndarray | RecordError]:
    """Runs in a worker process: one decoded array (or the RecordError) per segment."""
    out: list[np.ndarray | RecordError] = []
    for path, sr, start, stop, whole in tasks:
        try:
            out.append(read_segment(path, sr, start, stop, whole))
        except RecordError as exc:
            out.append(exc)
    return out


def _init_worker() -> None:
    # Decoding is one process per core; torch (imported only to resample) must not spread
    # each worker over every core and fight the model for them.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


class Decoder:
    """Decodes batches in ``workers`` processes, ``ahead`` batches ahead of the consumer."""

    def __init__(self, workers: int):
        self.pool = None
        if workers > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: forking a process that holds torch's thread pools can deadlock
            ctx = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
        self.ahead = max(2, 2 * workers)

    def stream(self, jobs: Iterable[list]) -> Iterator[list]:
        if self.pool is None:
            for job in jobs:
                yield decode_batch(job)
            return
        from concurrent.futures.process import BrokenProcessPool

        jobs = iter(jobs)
        pending: deque = deque()
        for job in jobs:
            pending.append(self.pool.submit(decode_batch, job))
            if len(pending) >= self.ahead:
                break
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool:
                raise SercliError("an audio decoding worker died (out of memory, or a crash in libsndfile)") from None
            nxt = next(jobs, None)
            if nxt is not None:
                pending.append(self.pool.submit(decode_batch, nxt))
            yield result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Decoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- 4. store: stitching chunks and pooling ---------------------------------------------------

class Assembly:
    """Collects one recording's segments into its stored array (pooled, or all frames)."""

    def __init__(self, item: Item, pool: str, dtype):
        self.item = item
        self.pool = pool
        self.dtype = dtype
        self.missing = len(item.segments)
        self.frames: np.ndarray | None = None  # pool none, chunked: (L, T, D) in store dtype
        self.sums: list | None = None  # pooled, chunked: float64 sums over frames
        self.count = 0
        self.result: np.ndarray | None = None

    def add(self, seg: Segment, feats) -> bool:
        """``feats``: (layers, frames, dim) float tensor of ``seg``. True once complete."""
        import torch

        self.missing -= 1
        if seg.keep is None:  # the whole recording in one segment
            self.result = pool_frames(feats, self.pool).cpu().numpy().astype(self.dtype)
            return True
        a, b = seg.keep
        part = feats[:, a:b]
        if self.pool == "none":
            if self.frames is None:
                L, _, D = part.shape
                self.frames = np.empty((L, self.item.frames, D), dtype=self.dtype)
            self.frames[:, seg.offset : seg.offset + (b - a)] = part.cpu().numpy()
        else:
            part = part.double()
            s = [part.sum(1), part.pow(2).sum(1)]
            self.sums = s if self.sums is None else [x + y for x, y in zip(self.sums, s)]
            self.count += b - a
        if self.missing:
            return False
        if self.pool == "none":
            self.result = self.frames
        else:
            mean = self.sums[0] / self.count
            out = mean
            if self.pool == "mean+std":
                std = (self.sums[1] / self.count - mean**2).clamp(min=0).sqrt()
                out = torch.cat([mean, std], dim=-1)
            self.result = out[:, None].float().cpu().numpy().astype(self.dtype)
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
    items, failed = plan(pairs, backbone, cfg)
    for key, msg in failed:
        on_error(key, msg)
        on_progress(1)
    if not items:
        return
    planned = batches(items, int(cfg.batch_seconds * sr), bool(getattr(backbone, "padding_sensitive", False)))
    jobs = ([(items[s.item].path, sr, s.start, s.stop, s.keep is None) for s in batch] for batch in planned)

    def failed_item(key: str, msg: str) -> None:
        on_error(key, msg)
        on_progress(1)

    _set_threads(cfg.device)
    # Start the decoders first: their start-up overlaps loading the weights.
    with Decoder(cfg.workers) as decoder:
        backbone.load(cfg.device)
        with store.writer(int(cfg.shard_mb * (1 << 20))) as writer:

            def done(key: str, array: np.ndarray) -> None:
                writer.add(key, array)
                on_progress(1)

            run_batches(backbone, items, planned, decoder.stream(jobs), cfg, done, failed_item)


def extract_waveform(backbone, wav: np.ndarray, cfg: ExtractConfig) -> np.ndarray:
    """The stored array for one in-memory waveform (at ``backbone.sample_rate``), made exactly
    as ``run_extraction`` makes it (chunking, layers, pooling, store dtype). Call
    ``backbone.load`` first."""
    item = plan_item(0, "waveform", "<array>", len(wav), backbone, cfg)
    planned = batches([item], int(cfg.batch_seconds * backbone.sample_rate), bool(getattr(backbone, "padding_sensitive", False)))
    out: dict[str, np.ndarray] = {}

    def failed(key: str, msg: str) -> None:
        raise RecordError(msg)

    wavs = ([wav[s.start : s.stop] for s in batch] for batch in planned)
    run_batches(backbone, [item], planned, wavs, cfg, out.__setitem__, failed)
    return out["waveform"]


def run_batches(
    backbone,
    items: list[Item],
    planned: list[list[Segment]],
    decoded: Iterable[list],
    cfg: ExtractConfig,
    done: Callable[[str, np.ndarray], None],
    failed: Callable[[str, str], None],
) -> None:
    """Run the backbone over ``planned`` batches (their audio comes from ``decoded``: an array
    or RecordError per segment), calling ``done(key, array)`` as each recording completes."""
    import torch

    layers = parse_layers(cfg.layers, backbone.num_layers)
    dtype = np.dtype(cfg.store_dtype)
    autocast = _autocast(cfg)
    assemblies: dict[int, Assembly] = {}
    dead: set[int] = set()
    with torch.inference_mode():
        for batch, wavs in zip(planned, decoded):
            todo = []
            for seg, wav in zip(batch, wavs):
                if seg.item in dead:
                    continue
                if isinstance(wav, RecordError):
                    dead.add(seg.item)
                    assemblies.pop(seg.item, None)
                    failed(items[seg.item].key, str(wav))
                    continue
                todo.append((seg, wav))
            if not todo:
                continue
            with autocast:
                outs = backbone.forward([w for _, w in todo], device=cfg.device)
            for (seg, _), feats in zip(todo, outs):
                if seg.item not in assemblies:
                    assemblies[seg.item] = Assembly(items[seg.item], cfg.pool, dtype)
                asm = assemblies[seg.item]
                if asm.add(seg, feats[layers].float()):
                    del assemblies[seg.item]
                    done(asm.item.key, asm.result)


def _autocast(cfg: ExtractConfig):
    import torch

    if not cfg.compute_dtype:
        return nullcontext()
    if cfg.compute_dtype not in COMPUTE_DTYPES:
        raise SercliError(f"--dtype {cfg.compute_dtype!r}: expected {', '.join(COMPUTE_DTYPES)}")
    device_type = torch.device(cfg.device).type
    return torch.autocast(device_type, dtype=getattr(torch, COMPUTE_DTYPES[cfg.compute_dtype]))


def _set_threads(device: str) -> None:
    """On CPU, one torch thread per core this process may use (torch counts the host's
    cores, which oversubscribes a container or a taskset)."""
    import torch

    if device == "cpu" and hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0))
        if torch.get_num_threads() > usable:
            torch.set_num_threads(usable)


def check_device(device: str) -> None:
    import torch

    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise SercliError(f"--device {device!r}: expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise SercliError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise SercliError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
