"""Quality gate `duration`: drop utterances too short or too long to carry an emotion."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sercli.api import Gate, Options


class Duration(Gate):
    name = "duration"
    description = "Drop utterances shorter or longer than given bounds (example plugin)."
    needs = ("duration",)

    class Options(Options):
        min_seconds: float = Field(0.5, ge=0, description="shortest utterance kept")
        max_seconds: float = Field(20.0, gt=0, description="longest utterance kept")

    def judge(self, records: list[dict[str, Any]]) -> list[Any]:
        lo, hi = self.options.min_seconds, self.options.max_seconds
        out = []
        for rec in records:
            seconds = float(rec["duration"])
            reason = (f"{seconds:.2f} s < {lo:g} s" if seconds < lo else
                      f"{seconds:.2f} s > {hi:g} s" if seconds > hi else None)
            out.append((reason, {"seconds": seconds}))
        return out
