"""Frame scores to speech spans, streaming (shared by the detectors of this plugin).

A span starts on a frame scored at least ``on``; it goes on while frames score at least
``off`` (hysteresis: ``off`` <= ``on``), and ends once ``min_silence`` frames in a row score
below ``off``, after its last such frame. Spans shorter than ``min_speech`` frames are dropped;
the rest are widened by ``pad`` frames each side (never into the previous span, and never
more than half of ``min_silence``, so that padded spans do not overlap).
"""

from __future__ import annotations

from typing import Iterable


class Hysteresis:
    def __init__(self, min_speech: int, min_silence: int, pad: int):
        self.min_speech = max(1, min_speech)
        self.min_silence = max(1, min_silence)
        self.pad = max(0, min(pad, self.min_silence // 2))
        self.frame = 0  # frames seen
        self.start: int | None = None  # first frame of the open span
        self.last = -1  # its last frame scored at least ``off``
        self.done = 0  # where the last span given ended (padded)

    def push(self, scores: Iterable[float], on: float, off: float) -> list[tuple[int, int]]:
        """The spans (first frame, end frame exclusive) that these scores close."""
        out = []
        for score in scores:
            i = self.frame
            self.frame += 1
            if self.start is None:
                if score >= on:
                    self.start = self.last = i
            elif score >= off:
                self.last = i
            elif i - self.last >= self.min_silence:
                out += self._close(i)
        return out

    def finish(self) -> list[tuple[int, int]]:
        """The span still open at the end of the recording, if any."""
        return self._close(self.frame) if self.start is not None else []

    def _close(self, limit: int) -> list[tuple[int, int]]:
        start, stop = self.start, self.last + 1
        self.start = None
        if start is None or stop - start < self.min_speech:
            return []
        span = max(start - self.pad, self.done), min(stop + self.pad, limit)
        self.done = span[1]
        return [span]
