"""The speech segments of a long recording (`sercli predict --segments`): a voice-activity
detector (a ``sercli.base.VAD`` plugin) over the file read block by block (sercli.core.audio.blocks:
memory flat in the recording's length), its spans checked, long ones cut for the encoder."""

from __future__ import annotations

import math
from typing import Any, Iterator

from sercli.core import plugins as pl
from sercli.core.audio import blocks
from sercli.core.errors import SercliError
from sercli.core.log import info

BLOCK_SECONDS = 30.0  # what a detector receives at a time


def choose(name: str | None, options: dict[str, Any]):
    """The detector ``--vad NAME`` names (SercliError when it cannot run here), or without a
    name the usable one of highest rank; one line on stderr says which, and why."""
    if name:
        vad = pl.create("vad", name, options)
        why = type(vad).usable()
        if why:
            raise SercliError(f"--vad {name}: {why}")
        return vad
    ranked = sorted(pl.names("vad"), key=lambda n: (-pl.get_class("vad", n).rank, n))
    passed = []
    for candidate in ranked:
        why = pl.get_class("vad", candidate).usable()
        if why is None:
            vad = pl.create("vad", candidate, options)
            instead = f"; {', '.join(passed)}" if passed else ""
            info(f"--vad: {candidate} (the default: the best installed voice-activity detector{instead}; "
                 f"--vad NAME chooses, `sercli plugins {candidate}` lists its options)")
            return vad
        passed.append(f"not {candidate}: {why}")
    raise SercliError("--segments: no voice-activity detector can run here"
                      + (f" ({'; '.join(passed)})" if passed else " (none is installed)"))


def speech_spans(path: str, vad, max_seconds: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of each speech segment of ``path`` as ``vad`` finds it, those
    longer than ``max_seconds`` cut into equal parts no longer than that. RecordError when
    the file cannot be read; SercliError naming the plugin when its spans make no sense."""
    sr = vad.sample_rate
    read = [0]

    def counted() -> Iterator:
        for block in blocks(path, sr, BLOCK_SECONDS):
            read[0] += len(block)
            yield block

    longest = max(1, int(max_seconds * sr))
    out: list[tuple[float, float]] = []
    last = 0
    for span in vad.speech(counted()):
        start, stop = _checked(span, last, read[0], vad)
        last = stop
        parts = math.ceil((stop - start) / longest)
        cuts = [start + (stop - start) * k // parts for k in range(parts + 1)]
        out += [(a / sr, b / sr) for a, b in zip(cuts, cuts[1:])]
    return out


def _checked(span, last: int, read: int, vad) -> tuple[int, int]:
    """(start, stop) as ints, or SercliError naming the plugin: a span must be a pair of whole
    sample indices, after the previous one, not empty, within what the detector was given."""
    import numbers

    ok = (isinstance(span, (tuple, list)) and len(span) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in span))
    if ok:
        start, stop = int(span[0]), int(span[1])
        if last <= start < stop <= read:
            return start, stop
    raise SercliError(f"{pl.describe('vad', vad)} gave the speech span {span!r}: spans must be (start, stop) "
                      f"sample indices in order, not empty, within the {read} samples read so far "
                      f"(the previous span ended at {last})")
