"""The scarce-data protocol (`sercli train --real-fraction F`) and the checks that compare
real with synthetic records before training.

Synthetic speech matters when real speech is scarce, so sercli can ask the question there:
a job keeps a seeded, speaker x emotion stratified fraction of the real utterances of every
non-test speaker, in the training and the validation part alike (`sercli.learning.fold`
applies it, the one place that prepares a fold): a user with a quarter of a corpus has no
larger validation part either. The test fold stays whole, so a learning curve is measured on
the same test speech at every fraction.
"""

from __future__ import annotations

from typing import Any

from sercli.core.errors import SercliError
from sercli.core.log import warn

Record = dict[str, Any]


def check_fraction(fraction: float) -> float:
    """``fraction`` if it is in (0, 1], else the one-line refusal."""
    if not 0 < fraction <= 1:
        raise SercliError(f"--real-fraction {fraction}: expected a share of the training data in (0, 1]")
    return float(fraction)


def cell(rec: Record) -> tuple[str, str]:
    return str(rec.get("speaker", "") or ""), str(rec.get("emotion", ""))


def keep_fraction(records: list[Record], fraction: float, seed: int) -> list[Record]:
    """A seeded subset of ``records`` holding ``fraction`` of them, stratified by speaker x
    emotion: each cell keeps its share (largest remainders round it, so the total is
    ``round(fraction * len(records))`` where the cells allow), and at least one utterance.
    The kept records are in their original order; ``fraction`` 1 keeps everything."""
    import numpy as np

    check_fraction(fraction)
    if fraction >= 1 or not records:
        return list(records)
    cells: dict[tuple[str, str], list[int]] = {}
    for i, rec in enumerate(records):
        cells.setdefault(cell(rec), []).append(i)
    keys = sorted(cells)
    rng = np.random.default_rng(seed)
    quota = np.array([fraction * len(cells[k]) for k in keys])
    take = np.maximum(np.floor(quota), 1).astype(int)
    want = max(int(round(fraction * len(records))), len(keys))
    # the cells furthest below their share get one more each (ties broken by the seed)
    left = quota - take
    order = np.lexsort((rng.random(len(keys)), -left))
    for j in order[: max(0, want - int(take.sum()))]:
        if left[j] > 0:
            take[j] += 1
    kept: list[int] = []
    for key, n in zip(keys, take):
        members = cells[key]
        kept += rng.permutation(members)[: min(int(n), len(members))].tolist()
    return [records[i] for i in sorted(kept)]


# -- real against synthetic ---------------------------------------------------------------------

def languages(records: list[Record]) -> set[str]:
    """The languages the records say they are in (primary subtags: ``de-AT`` counts as ``de``)."""
    return {str(r["language"]).strip().lower().replace("_", "-").split("-")[0]
            for r in records if r.get("language")}


def language_mismatch(real: list[Record], synthetic: list[Record]) -> str | None:
    """The warning to give when the synthetic records are in languages the real ones are not
    (records that name no language are left out of the comparison), else None."""
    spoken, made = languages(real), languages(synthetic)
    if not spoken or not made or made <= spoken:
        return None
    fix = next(iter(spoken)) if len(spoken) == 1 else "LANG"
    return (f"the synthetic records are in {', '.join(sorted(made))}, the real ones in {', '.join(sorted(spoken))}: "
            f"synthetic speech in another language may not help; make it with `gen-text --language {fix}`")


def warn_language(real: list[Record], synthetic: list[Record]) -> None:
    """Warn once (one line) when synthetic and real records are in different languages."""
    message = language_mismatch(real, synthetic)
    if message:
        warn(message)
