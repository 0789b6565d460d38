"""Voice-activity detector `peaks`: 10 ms frames whose peak passes a level are speech."""

from __future__ import annotations

from pydantic import Field

from sercli.api import VAD, Options


class Peaks(VAD):
    name = "peaks"
    description = "Frames whose peak amplitude passes a level, pauses shorter than a gap bridged (example plugin)."

    class Options(Options):
        level: float = Field(0.05, gt=0, description="peak amplitude that counts as speech")
        gap_ms: float = Field(200.0, ge=0, description="pauses shorter than this do not end a segment (ms)")

    def speech(self, blocks):
        import numpy as np

        hop = self.sample_rate // 100
        gap = int(self.options.gap_ms / 10)
        start = last = None
        frame = 0
        for block in blocks:  # one block at a time: a bounded state (start, last)
            for k in range(0, len(block), hop):
                if np.abs(block[k:k + hop]).max() >= self.options.level:
                    start = frame if start is None else start
                    last = frame
                elif start is not None and frame - last > gap:
                    yield start * hop, (last + 1) * hop
                    start = None
                frame += 1
        if start is not None:
            yield start * hop, min((last + 1) * hop, frame * hop)
