"""The ``energy`` detector: frame energy against an adaptive noise floor (numpy only)."""

from __future__ import annotations

from typing import Iterable, Iterator

from pydantic import Field

from sercli.api import VAD, Options


class EnergyVAD(VAD):
    name = "energy"
    description = ("Frame energy above the recording's noise floor, with hysteresis and minimum speech and "
                   "silence durations (numpy only; the fallback when silero-vad is not installed).")
    rank = 0

    class Options(Options):
        frame_ms: float = Field(20.0, ge=5, le=100, description="frame length (ms)")
        threshold_db: float = Field(12.0, gt=0, description="speech starts this far above the noise floor (dB)")
        hysteresis_db: float = Field(6.0, ge=0, description="speech goes on down to threshold_db minus this (dB)")
        floor_db: float = Field(-55.0, le=0, description="frames quieter than this are never speech (dBFS)")
        window_s: float = Field(30.0, gt=0, description="the noise floor: the quietest 10% of the frames of the "
                                                       "last window_s seconds")
        min_speech_ms: float = Field(250.0, ge=0, description="shorter bursts are dropped (ms)")
        min_silence_ms: float = Field(300.0, gt=0, description="shorter pauses do not end a segment (ms)")
        pad_ms: float = Field(30.0, ge=0, description="each segment is widened by this much each side (ms)")

    def speech(self, blocks: Iterable) -> Iterator[tuple[int, int]]:
        import numpy as np

        from sercli_vad.spans import Hysteresis, NoiseFloor, frame_db

        o = self.options
        hop = max(1, round(self.sample_rate * o.frame_ms / 1000))
        per_ms = self.sample_rate / 1000 / hop  # frames per millisecond
        machine = Hysteresis(round(o.min_speech_ms * per_ms), round(o.min_silence_ms * per_ms), round(o.pad_ms * per_ms))
        floor = NoiseFloor(round(o.window_s * 1000 * per_ms))
        carry = np.zeros(0, np.float32)
        total = 0
        for block in blocks:
            total += len(block)
            x = np.concatenate([carry, block])
            k = len(x) // hop
            carry = x[k * hop:]
            if k:
                db = frame_db(x[: k * hop].reshape(k, hop))
                on = max(floor.push(db) + o.threshold_db, o.floor_db)
                for a, b in machine.push(db, on, on - o.hysteresis_db):
                    yield a * hop, min(b * hop, total)
        if len(carry):  # the last, shorter frame
            db = frame_db(carry[None])
            on = max(floor.push([]) + o.threshold_db, o.floor_db)
            machine.push(db, on, on - o.hysteresis_db)
        for a, b in machine.finish():
            yield a * hop, min(b * hop, total)
