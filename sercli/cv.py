"""Evaluation protocols from the manifest's fields, the validation part inside a training fold,
and the leakage guards.

A protocol turns the real records into folds; each fold has a test part and a training pool.
The validation part used for early stopping and every choice (``--tune``) is carved out of the
training pool, grouped by speaker, so the test part is never used to decide anything.

    loso           leave one speaker out           (field ``speaker``)
    loso-session   leave one session out (IEMOCAP)  (field ``session``)
    kfold:K        K folds grouped by speaker       (sklearn GroupKFold)
    field:NAME     given splits: the values of NAME are the folds; if some value is ``test``,
                   one fold with that test part (and ``val``/``dev`` as its validation part)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sercli.errors import SercliError
from sercli.log import warn

Record = dict[str, Any]
TEST_NAMES = {"test", "eval", "evaluation"}
VAL_NAMES = {"val", "valid", "validation", "dev", "development"}


@dataclass
class Fold:
    name: str
    description: str
    pool: list[Record]  # training pool: the validation part is carved from it
    test: list[Record]
    val: list[Record] | None = None  # a validation part given by the manifest


def speaker(rec: Record) -> str:
    return str(rec.get("speaker", "") or "")


def make_folds(records: list[Record], spec: str, *, allow_speaker_overlap: bool = False) -> list[Fold]:
    """Folds of ``records`` for a ``--cv`` spec (see the module docstring)."""
    spec = spec.strip()
    if spec in ("loso", "loso-speaker"):
        folds = _by_field(records, "speaker", "speaker")
    elif spec == "loso-session":
        folds = _by_field(records, "session", "session")
    elif spec.startswith("kfold:"):
        folds = _kfold(records, _int(spec[6:], spec), allow_speaker_overlap)
    elif spec.startswith("field:") and spec[6:]:
        folds = _given(records, spec[6:])
    else:
        raise SercliError(f"--cv {spec!r}: expected loso, loso-session, kfold:K or field:NAME")
    for fold in folds:
        check_speakers(fold.pool + (fold.val or []), fold.test, allow_speaker_overlap, fold.name)
    return folds


def holdout(records: list[Record], test_speakers: list[str], val_speakers: list[str]) -> Fold:
    """One fold: the given test speakers (possibly none) against the rest."""
    known = {speaker(r) for r in records}
    for option, given in (("--test-speakers", test_speakers), ("--val-speakers", val_speakers)):
        missing = sorted(set(given) - known)
        if missing:
            raise SercliError(
                f"{option}: no records of speaker(s) {', '.join(missing)} (known: {', '.join(sorted(known))})"
            )
    if set(test_speakers) & set(val_speakers):
        raise SercliError("--test-speakers and --val-speakers overlap")
    test = [r for r in records if speaker(r) in test_speakers]
    pool = [r for r in records if speaker(r) not in test_speakers]
    val = None
    if val_speakers:
        val = [r for r in pool if speaker(r) in val_speakers]
        pool = [r for r in pool if speaker(r) not in val_speakers]
    if not pool:
        raise SercliError("every speaker is a test speaker: nothing left to train on")
    desc = f"test speakers {', '.join(test_speakers)}" if test_speakers else "no test part"
    return Fold("fold-00", desc, pool, test, val)


def check_speakers(train: list[Record], test: list[Record], allow: bool, where: str = "") -> None:
    """Refuse a test part that shares speakers with the training part, unless allowed."""
    overlap = sorted({speaker(r) for r in train} & {speaker(r) for r in test})
    if overlap and not allow:
        shown = ", ".join(repr(s) for s in overlap[:5]) + (" ..." if len(overlap) > 5 else "")
        raise SercliError(
            f"{where + ': ' if where else ''}speaker(s) {shown} are in both the training and the test part "
            "(records without a speaker count as one speaker ''); "
            "pass --allow-speaker-overlap to train and test on the same speakers anyway"
        )


def split_val(fold: Fold, val_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """(train, val) from a fold's pool: whole speakers go to validation, classes stratified."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, StratifiedShuffleSplit

    if fold.val is not None:
        return fold.pool, fold.val
    pool = fold.pool
    groups = [speaker(r) for r in pool]
    y = [r["emotion"] for r in pool]
    n_groups = len(set(groups))
    n_splits = max(2, round(1 / val_fraction))
    if n_groups >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        tr, va = next(splitter.split(pool, y, groups))
    elif n_groups >= 2:
        tr, va = next(GroupShuffleSplit(1, test_size=val_fraction, random_state=seed).split(pool, y, groups))
    else:
        warn(f"{fold.name}: one training speaker: the validation part is split by utterance, not by speaker")
        try:
            splitter = StratifiedShuffleSplit(1, test_size=val_fraction, random_state=seed)
            tr, va = next(splitter.split(pool, y))
        except ValueError:  # a class with a single item cannot be stratified
            tr, va = next(GroupShuffleSplit(1, test_size=val_fraction, random_state=seed).split(pool, y, range(len(pool))))
    train, val = [pool[i] for i in tr], [pool[i] for i in va]
    if not train or not val:
        raise SercliError(f"{fold.name}: the validation split left no training or no validation data")
    return train, val


# -- leakage guard: synthetic sentences that are also test transcripts -------------------------

def normalise_text(text: str) -> str:
    """Case, accents' composition, punctuation and spacing do not make a sentence new."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def _texts(records: list[Record]) -> set[str]:
    out = set()
    for r in records:
        for key in ("transcript", "text"):
            if r.get(key):
                out.add(normalise_text(str(r[key])))
    return out


def drop_leaking(synthetic: list[Record], test: list[Record]) -> tuple[list[Record], list[Record]]:
    """(kept, dropped): a synthetic utterance whose text is a test transcript is dropped."""
    banned = _texts(test)
    if not banned:
        return synthetic, []
    kept, dropped = [], []
    for r in synthetic:
        text = r.get("text") or r.get("transcript")
        (dropped if text and normalise_text(str(text)) in banned else kept).append(r)
    return kept, dropped


# -- protocols ----------------------------------------------------------------------------------

def _int(text: str, spec: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise SercliError(f"--cv {spec!r}: expected kfold:K with a number K") from None
    if k < 2:
        raise SercliError(f"--cv {spec!r}: K must be at least 2")
    return k


def _values(records: list[Record], field: str) -> list[str]:
    missing = sum(1 for r in records if r.get(field) in (None, ""))
    if missing:
        raise SercliError(f"{missing} of {len(records)} records have no {field!r} field; cannot split on it")
    return [str(r[field]) for r in records]


def _by_field(records: list[Record], field: str, word: str) -> list[Fold]:
    values = _values(records, field)
    names = sorted(set(values))
    if len(names) < 2:
        raise SercliError(f"leave-one-{word}-out needs at least 2 {word}s; the records have {len(names)}")
    return _one_out(records, values, names, lambda name: f"{word} {name}")


def _kfold(records: list[Record], k: int, allow_overlap: bool) -> list[Fold]:
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    groups = [speaker(r) for r in records]
    y = [r["emotion"] for r in records]
    if len(set(groups)) >= k:
        splits = GroupKFold(n_splits=k).split(records, y, groups)
        how = "speakers"
    elif allow_overlap:
        warn(f"fewer than {k} speakers: kfold:{k} splits by utterance (speakers overlap)")
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=0).split(records, y)
        how = "utterances"
    else:
        raise SercliError(
            f"kfold:{k} needs at least {k} speakers to group by (the records have {len(set(groups))}); "
            "pass --allow-speaker-overlap to split by utterance"
        )
    folds = []
    for n, (tr, te) in enumerate(splits):
        test = [records[i] for i in te]
        desc = f"{how} " + ", ".join(sorted({speaker(r) for r in test})) if how == "speakers" else f"{len(te)} utterances"
        folds.append(Fold(f"fold-{n:02d}", desc, [records[i] for i in tr], test))
    return folds


def _given(records: list[Record], field: str) -> list[Fold]:
    values = [v.lower() for v in _values(records, field)]
    names = sorted(set(values))
    if set(names) & TEST_NAMES:
        test = [r for r, v in zip(records, values) if v in TEST_NAMES]
        val = [r for r, v in zip(records, values) if v in VAL_NAMES] or None
        pool = [r for r, v in zip(records, values) if v not in TEST_NAMES | VAL_NAMES]
        if not pool:
            raise SercliError(f"field {field!r}: no training records (values: {', '.join(names)})")
        return [Fold("fold-00", f"{field}=test", pool, test, val)]
    if len(names) < 2:
        raise SercliError(f"field {field!r} has a single value {names[0]!r}: nothing to hold out")
    return _one_out(records, values, names, lambda name: f"{field}={name}")


def _one_out(records: list[Record], values: list[str], names: list[str], describe) -> list[Fold]:
    """One fold per value: its records are the test fold, all others the training pool."""
    folds = []
    for k, name in enumerate(names):
        test = [r for r, v in zip(records, values) if v == name]
        pool = [r for r, v in zip(records, values) if v != name]
        folds.append(Fold(f"fold-{k:02d}", describe(name), pool, test))
    return folds
