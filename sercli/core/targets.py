"""Dimensional targets (`sercli train --target arousal,valence,dominance`): numeric record fields
a head learns to predict instead of (or, with ``emotion`` among them, besides) the emotion class.

Any numeric field of a record can be a target: the corpus readers keep MSP-Podcast's and
IEMOCAP's ``arousal``, ``valence`` and ``dominance``. A record without a target field (or with
null there) is skipped, and each input says how many it lost (synthetic speech carries no
dimension values unless its records were given them, so `--synthetic` then adds nothing); a
value that is not a finite number (``"high"``, a list, a boolean) is one error naming the
record, its file and line, and the field, before any training. NaN and infinity never get this
far: no records file may hold them (sercli.core.records).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from sercli.core.errors import SercliError
from sercli.core.log import warn

Record = dict[str, Any]
CLASS = "emotion"  # the one --target name that is the classifier's (multi-task: emotion,arousal)
# fields a target cannot be: they are identifiers, paths or text, never a quantity to learn
NOT_TARGETS = ("id", "audio", "text", "transcript", "speaker", "session", "gender", "source", "raw_label", "voice",
               "split", "language", "features", "provenance", "derived_from")


def parse(spec: str | None) -> tuple[bool, list[str]]:
    """``--target`` -> (whether the emotion classifier is trained too, the numeric targets).
    None: (True, []), plain classification."""
    if spec is None:
        return True, []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise SercliError(f"--target {spec!r}: expected comma-separated record fields, e.g. arousal,valence")
    if len(set(names)) != len(names):
        raise SercliError(f"--target {spec!r}: each field once")
    bad = [n for n in names if n in NOT_TARGETS]
    if bad:
        raise SercliError(f"--target {', '.join(bad)}: not a numeric field (targets are fields such as arousal, "
                          f"valence, dominance; {CLASS} adds the emotion classifier)")
    dims = [n for n in names if n != CLASS]
    if not dims:
        raise SercliError(f"--target {spec}: name at least one numeric field (without --target, sercli trains "
                          "the emotion classifier)")
    return CLASS in names, dims


def check_values(located: Iterable[tuple[Record, str]], targets: list[str]) -> None:
    """Refuse a target value that is not a finite number, naming the record, where it was read
    (``FILE line N``) and the field; absent or null values pass (`keep` skips those records)."""
    for rec, where in located:
        for name in targets:
            value = rec.get(name)
            if value is None or number(value):
                continue
            got = {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}.get(type(value), "not a number")
            raise SercliError(f"{where}: record {rec.get('id')!r}: target field {name!r} is {got} ({value!r}); "
                              "--target needs a number in every record that has the field")


def number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def keep(records: list[Record], targets: list[str], what: str) -> list[Record]:
    """The records that have every target; one warning says how many of ``what`` were skipped,
    and for which fields."""
    if not targets:
        return records
    kept = [r for r in records if all(r.get(t) is not None for t in targets)]
    if len(kept) < len(records):
        lacking = {t: sum(1 for r in records if r.get(t) is None) for t in targets}
        fields = ", ".join(f"{t} ({n})" for t, n in lacking.items() if n)
        warn(f"{what}: skipped {len(records) - len(kept)} of {len(records)} records without a target value: {fields}")
    return kept


def values(records: list[Record], targets: list[str]):
    """(N, K) float32 of the records' target values."""
    import numpy as np

    return np.asarray([[float(r[t]) for t in targets] for r in records], dtype=np.float32).reshape(-1, len(targets))


def targets_of(config: dict[str, Any]) -> list[str]:
    """The numeric targets a job's model predicts ([] for a classifier; older runs have none)."""
    return list(config.get("targets") or (config.get("train") or {}).get("targets") or [])
