"""Steps 1 and 2 of an extraction: plan from headers, then batch. No audio is decoded here.

1. Plan. Each file's header gives its length (``sercli.core.audio.audio_length``). A recording
   longer than ``chunk_seconds`` is cut into overlapping chunks aligned to the backbone's
   frame hop (``Backbone.hop_samples``); each chunk keeps the frames nearest its centre, so
   the stitched output has exactly the frames the model would give the whole recording, and
   memory stays bounded however long the recording is. A backbone without a hop sees whole
   recordings.
2. Batch. Segments (whole recordings or chunks) sorted by length fill batches of at most
   ``batch_seconds`` of padded audio; on a CPU only with segments within ``max_padding`` (2%)
   of the batch's longest, as padding there costs more than batching saves.
   Padding-sensitive backbones only share a batch between segments of equal length, so
   batched output equals one-by-one output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sercli.core.audio import audio_length
from sercli.core.errors import RecordError, SercliError
from sercli.features.config import ExtractConfig
from sercli.core.guards import too_short


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
    """The segments of one recording of ``n`` samples (RecordError if too short for the backbone)."""
    item = Item(key, path, n)
    hop = backbone.hop_samples
    if hop and backbone.num_frames(n) < 1:
        raise too_short(backbone, n, path)
    limit = cfg.chunk_seconds
    if backbone.max_chunk_seconds:
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
            raise SercliError(f"a chunk overlap of {cfg.chunk_overlap:g} s is too small for this backbone's "
                              "receptive field")
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
