"""Frame scores to speech spans, streaming (shared by the detectors of this plugin).

A span starts on a frame scored at least ``on``; it goes on while frames score at least
``off`` (hysteresis: ``off`` <= ``on``), and ends once ``min_silence`` frames in a row score
below ``off``, after its last such frame. With ``loud`` (a flag per frame: its energy is above
the noise floor), a span begins at its first loud frame and ends after its last one: a model's
hangover over the quiet after speech is trimmed. Spans shorter than ``min_speech`` frames are
dropped; the rest are widened by ``pad`` frames each side (never into the previous span, and
never more than half of ``min_silence``, so that padded spans do not overlap).
"""

from __future__ import annotations

from typing import Iterable, Sequence


class Hysteresis:
    def __init__(self, min_speech: int, min_silence: int, pad: int):
        self.min_speech = max(1, min_speech)
        self.min_silence = max(1, min_silence)
        self.pad = max(0, min(pad, self.min_silence // 2))
        self.frame = 0  # frames seen
        self.start: int | None = None  # first frame of the open span
        self.last = -1  # its last frame scored at least ``off``
        self.loud: tuple[int, int] | None = None  # its first and last such frames that are loud
        self.done = 0  # where the last span given ended (padded)

    def push(self, scores: Iterable[float], on: float, off: float,
             loud: Sequence[bool] | None = None) -> list[tuple[int, int]]:
        """The spans (first frame, end frame exclusive) that these scores close."""
        out = []
        for k, score in enumerate(scores):
            i = self.frame
            self.frame += 1
            if self.start is None:
                if score >= on:
                    self.start = self.last = i
                    self.loud = (i, i) if loud is None or loud[k] else None
            elif score >= off:
                self.last = i
                if loud is None or loud[k]:
                    self.loud = (self.loud[0] if self.loud else i, i)
            elif i - self.last >= self.min_silence:
                out += self._close(i)
        return out

    def finish(self) -> list[tuple[int, int]]:
        """The span still open at the end of the recording, if any."""
        return self._close(self.frame) if self.start is not None else []

    def _close(self, limit: int) -> list[tuple[int, int]]:
        start, stop = (self.loud[0], self.loud[1] + 1) if self.loud else (self.start, self.last + 1)
        self.start = None
        if stop - start < self.min_speech:
            return []
        span = max(start - self.pad, self.done), min(stop + self.pad, limit)
        self.done = span[1]
        return [span]


class NoiseFloor:
    """The noise floor of a recording so far, streaming: the quietest 10% of the frame energies
    (dB) of the last ``window`` frames."""

    def __init__(self, window: int):
        import numpy as np

        self.window = max(1, window)
        self.history = np.zeros(0)

    def push(self, db) -> float:
        import numpy as np

        self.history = np.concatenate([self.history, db])[-self.window:]
        return float(np.percentile(self.history, 10)) if len(self.history) else float("-inf")


def frame_db(frames):
    """The energy (dB relative to full scale) of each row of ``frames``."""
    import numpy as np

    return 10 * np.log10(np.mean(np.asarray(frames, dtype=np.float64) ** 2, axis=-1) + 1e-12)
