"""The ``emotion`` gate: a run trained on real speech scores each synthetic utterance; keep
those whose intended emotion it recognises.

The records need features of the kind the run was trained on (`sercli extract` with its
backbone and options). The run's models (every fold x seed of a CV run, averaged) give class
probabilities through sercli's one inference path (``sercli.api.run_probabilities``, as
`eval` and `predict`). An utterance is kept when its intended emotion has probability at least
``min_prob``, or is among the run's ``max_rank`` most likely classes (either test passing
keeps it; with neither option set, ``max_rank`` is 1: the run's first choice). An emotion the
run was not trained on cannot be recognised: such a record is dropped with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import Field, model_validator

from sercli.api import Gate, Options, SercliError


class EmotionGate(Gate):
    name = "emotion"
    description = "A run trained on real speech must recognise each utterance's intended emotion"
    needs = ("emotion",)
    # all records at once: a run trained with norm=speaker standardises each voice over all of its utterances
    batch_size = 1_000_000

    class Options(Options):
        run: str = Field(..., description="run folder of a model trained on real data (sercli train --out)")
        min_prob: Optional[float] = Field(None, ge=0.0, le=1.0, description="keep if p(intended emotion) >= this")
        max_rank: Optional[int] = Field(None, ge=1, description="keep if the intended emotion ranks <= this")

        @model_validator(mode="after")
        def _default(self):
            if self.min_prob is None and self.max_rank is None:
                self.max_rank = 1
            return self

    def check(self, records: list[dict[str, Any]]) -> None:
        if not Path(self.options.run).is_dir():
            raise SercliError(f"gate 'emotion': run {self.options.run!r} is not a folder (-O run=PATH of a "
                              "`sercli train --out` run trained on real data)")
        lacking = [r["id"] for r in records if not r.get("features")]
        if lacking:
            raise SercliError(
                f"gate 'emotion' scores features, and {lacking[0]!r}"
                + (f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else "")
                + " has none: run `sercli extract` on the records first, with the backbone the run was trained on"
            )

    def judge(self, records: list[dict[str, Any]]) -> list[Any]:
        from sercli.api import run_probabilities

        labels, probs = run_probabilities(self.options.run, records, f"gate 'emotion' (run {self.options.run})")
        out: list[Any] = []
        for rec, row in zip(records, probs):
            emotion = rec["emotion"]
            predicted = labels[int(row.argmax())]
            if emotion not in labels:
                out.append((f"the run does not know emotion {emotion!r} (it knows {', '.join(labels)})",
                            {"predicted": predicted}))
                continue
            p = float(row[labels.index(emotion)])
            rank = 1 + int((row > p).sum())
            scores = {"prob": round(p, 4), "rank": rank, "predicted": predicted}
            out.append((self._reason(emotion, p, rank, predicted), scores))
        return out

    def _reason(self, emotion: str, p: float, rank: int, predicted: str) -> str | None:
        opts = self.options
        if (opts.min_prob is not None and p >= opts.min_prob) or (opts.max_rank is not None and rank <= opts.max_rank):
            return None
        tests = []
        if opts.min_prob is not None:
            tests.append(f"p({emotion}) {p:.2f} < min_prob {opts.min_prob:g}")
        if opts.max_rank is not None:
            tests.append(f"rank {rank} > max_rank {opts.max_rank}")
        return " and ".join(tests) + f" (the run hears {predicted})"
