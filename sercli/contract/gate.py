"""The gate family (`sercli filter --gate NAME`, hook ``register_gates``)."""

from __future__ import annotations

from typing import Any, ClassVar

from sercli.contract.common import Plugin


class Gate(Plugin):
    """Judges synthetic utterances between `synthesize` and `extract` (`sercli filter`): keeps
    a record, or drops it with a reason (a Whisper round trip, a model trained on real speech).

    `sercli filter` calls ``check`` once with every record to judge, before anything heavy
    (refuse what the gate cannot judge: a missing field, a language its model lacks, with the
    fix), then ``load`` once, then ``judge`` on batches of at most ``batch_size`` records.
    """

    batch_size: ClassVar[int] = 8
    # record fields the gate reads; sercli refuses records without them before any work
    needs: ClassVar[tuple[str, ...]] = ()

    def check(self, records: list[dict[str, Any]]) -> None:
        """SercliError (one line, with the fix) when the gate cannot judge these records."""

    def load(self, device: str = "cpu") -> None:
        """Load models; called once before the first ``judge``."""

    def judge(self, records: list[dict[str, Any]]) -> list[Any]:
        """One verdict per record, in order: ``(None, scores)`` keeps it, ``(reason, scores)``
        drops it (``reason``: a short phrase such as ``"WER 0.62 > 0.4"``); ``scores`` is a
        dict of JSON values (the measurements) written into the record's provenance. An entry
        may be a ``RecordError``: that record cannot be judged (reported, left for a re-run).
        sercli checks the verdicts: a list of another length, or an entry of another shape
        (a bare ``"ok"``, a bool, scores that are not a dict), ends the command (exit status 1)
        with one line naming the gate's plugin; no record of that batch is written."""
        raise NotImplementedError
