"""One place that prepares a fold: every path that trains (a run's jobs, `--search` and `--tune`
trials, the refit, fine-tuning, the cluster workers) gets its data from here.

`split` turns a fold, a seed and the protocol's settings into a job's records:

1. the validation part: whole speakers carved out of the training pool (`cv.split_val`; the
   manifest's own development partition where it has one);
2. the real fraction (`--real-fraction F`, `scarce.keep_fraction`): F of the real utterances of
   every non-test speaker, in the training and the validation part alike, seeded and
   stratified by speaker x emotion. The test fold stays whole. Training, validation, the
   refit (which trains on both) and every search trial see only the kept records, so no model
   learns from more than F of the non-test real speech (plus at most one utterance per
   speaker x emotion cell, the rounding);
3. the synthetic records a job may use: a new sentence whose text is a test transcript is
   dropped (`cv.drop_leaking`), and so is speech derived from a real recording (``derived_from``: made
   by resynthesis) unless the real recording it comes from (through any chain of derived
   records) is in this job's training part: a source in the test fold, in the validation
   part, or left out by the fraction would bring that speech back in.

`examples` turns a split into the `Examples` the trainer reads, each part speaker-normalised
with its own statistics under ``--norm speaker``. Standardisation is fitted by the trainer on
the training part only (``TrainerAPI.new_model(stats_from=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sercli.core.errors import SercliError
from sercli.learning.cv import Fold, drop_leaking, split_val
from sercli.learning.scarce import keep_fraction

Record = dict[str, Any]

# why a synthetic record is left out of a job (the keys of `Split.dropped`, in the job's config)
LEAK = "text_is_a_test_transcript"
SOURCE_TEST = "derived_from_test"
SOURCE_VAL = "derived_from_validation"
SOURCE_LEFT_OUT = "derived_from_left_out_by_real_fraction"


@dataclass
class Split:
    """A job's records: what it trains on, validates on and is tested on, and why the synthetic
    records it may not use were left out."""

    train: list[Record]
    val: list[Record]
    test: list[Record]
    synthetic: list[Record]  # the synthetic records this job may use
    non_test: int  # real non-test utterances of the fold before the fraction
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> synthetic records left out
    leaked: list[Record] = field(default_factory=list)  # those whose text is a test transcript

    def real_used(self) -> dict[str, Any]:
        """The real utterances the job learns from (training, and validation for its choices;
        the refit trains on both) and their share of the fold's non-test real data."""
        n = len(self.train) + len(self.val)
        return {"train": len(self.train), "val": len(self.val), "learned_from": n, "non_test": self.non_test,
                "share": round(n / self.non_test, 4) if self.non_test else 0.0}


def split(fold: Fold, seed: int, *, val_fraction: float, real_fraction: float,
          synthetic: list[Record]) -> Split:
    """The records of ``fold`` trained with ``seed`` (see the module docstring)."""
    train, val = split_val(fold, val_fraction, seed)
    non_test = len(train) + len(val)
    if real_fraction < 1:
        kept = {id(r) for r in keep_fraction(train + val, real_fraction, seed)}
        train = [r for r in train if id(r) in kept]
        val = [r for r in val if id(r) in kept]
    # A derived record says its source's sentence, which its training speaker said too: the text
    # guard is for new sentences, the source guard below for derived speech.
    fresh, leaked = drop_leaking([r for r in synthetic if _source_id(r) is None], fold.test)
    fresh_ids = {id(r) for r in fresh}
    usable = [r for r in synthetic if id(r) in fresh_ids or _source_id(r) is not None]
    kept_ids = {id(x) for x in train + val}
    left_out = [r for r in fold.pool + (fold.val or []) if id(r) not in kept_ids]
    usable, dropped = usable_derived(usable, train, {SOURCE_TEST: fold.test, SOURCE_VAL: val,
                                                     SOURCE_LEFT_OUT: left_out})
    if leaked:
        dropped = {LEAK: len(leaked), **dropped}
    return Split(train, val, fold.test, usable, non_test, dropped, leaked)


def derived_source(rec: Record, synthetic_by_id: dict[str, Record]) -> str | None:
    """The id of the real record ``rec`` is derived from, following ``derived_from`` through
    derived synthetic records to the first real one; None for a record not derived from any."""
    source, seen = _source_id(rec), set()
    while source is not None and source in synthetic_by_id:
        further = _source_id(synthetic_by_id[source])
        if further is None:  # a synthetic record derived from nothing: not a real recording
            return source
        if source in seen:
            raise SercliError(f"synthetic record {rec.get('id')!r}: derived_from goes round in a circle ({source!r})")
        seen.add(source)
        source = further
    return source


def _source_id(rec: Record) -> str | None:
    origin = rec.get("derived_from")
    if origin is None:
        return None
    value = origin.get("id") if isinstance(origin, dict) else origin
    return None if value in (None, "") else str(value)


def usable_derived(synthetic: list[Record], train: list[Record],
                   elsewhere: dict[str, list[Record]]) -> tuple[list[Record], dict[str, int]]:
    """(usable, reason -> count): a derived synthetic record is usable only when its real
    source is in ``train``; ``elsewhere`` names where the others' sources are (reason -> records),
    in the order the reasons are tried. Records not derived from any pass."""
    by_id = {str(r["id"]): r for r in synthetic if r.get("id") is not None}
    training = {str(r.get("id")) for r in train}
    where = {}
    for reason, records in reversed(list(elsewhere.items())):
        where.update({str(r.get("id")): reason for r in records})
    usable, dropped = [], {}
    for rec in synthetic:
        source = derived_source(rec, by_id)
        if source is None or source in training:
            usable.append(rec)
            continue
        reason = where.get(source)
        if reason is None:
            raise _unknown_source(rec, source)
        dropped[reason] = dropped.get(reason, 0) + 1
    return usable, dropped


def _unknown_source(rec: Record, source: str) -> SercliError:
    return SercliError(f"synthetic record {rec.get('id')!r}: derived_from names {source!r}, which is no "
                       "real record of this run (give the manifest it was made from)")


def check_sources(synthetic: list[Record], real: list[Record]) -> None:
    """Refuse, before any training, a derived record whose source is no record given."""
    if not any(r.get("derived_from") is not None for r in synthetic):
        return
    by_id = {str(r["id"]): r for r in synthetic if r.get("id") is not None}
    real_ids = {str(r.get("id")) for r in real}
    for rec in synthetic:
        source = derived_source(rec, by_id)
        if source is not None and source not in real_ids:
            raise _unknown_source(rec, source)


def dropped_message(name: str, dropped: dict[str, int]) -> str | None:
    """The one stderr line for a job's dropped synthetic records, or None."""
    if not dropped:
        return None
    words = {LEAK: "text is a test transcript", SOURCE_TEST: "derived from a test recording",
             SOURCE_VAL: "derived from a validation recording",
             SOURCE_LEFT_OUT: "derived from a recording --real-fraction left out"}
    parts = ", ".join(f"{n} {words.get(k, k)}" for k, n in dropped.items())
    return f"{name}: dropped {sum(dropped.values())} synthetic utterances ({parts})"


def examples(job: Split, labels: list[str], *, norm: str, finetune: Any = None, where: str = "",
             targets: list[str] | None = None) -> tuple:
    """(training, validation, synthetic) Examples of a job (with the values of ``targets``, the
    run's dimensional targets); with ``norm == "speaker"`` each part standardised speaker by
    speaker with its own statistics."""
    from sercli.learning import speakernorm
    from sercli.learning.data import Examples

    index = {lab: i for i, lab in enumerate(labels)}
    build = Examples.build
    if finetune:  # waveforms, for the encoder that learns (sercli.learning.finetune)
        from sercli.learning.finetune import run_inputs

        build = run_inputs(finetune)[0]
    if targets:
        from functools import partial

        build = partial(build, targets=targets)
    out = [build(job.train, index, 0), build(job.val, index, 0), build(job.synthetic, index, 1)]
    if norm == "speaker":
        names = (f"{where} training part", f"{where} validation part", "--synthetic")
        out = [speakernorm.apply(ex, name) for ex, name in zip(out, names)]
    return tuple(out)
