"""Evaluation protocols from the manifest's fields, the validation part inside a training fold,
and the leakage guards.

A protocol turns the real records into folds; each fold has a test part and a training pool.
The validation part used for early stopping and every choice (``--tune``) is carved out of the
training pool, grouped by speaker, so the test part is never used to decide anything.

    loso           leave one speaker out           (field ``speaker``)
    loso-session   leave one session out (IEMOCAP)  (field ``session``)
    kfold:K        K folds grouped by speaker       (sklearn GroupKFold)
    field:NAME     given splits: the values of NAME are partition names (see `split_role`);
                   the training partition trains, the development partition (if any) is the
                   validation part, and each test partition is one fold (MSP-Podcast's Test1
                   and Test2 give two folds, each trained on Train and validated on
                   Development); any other value is refused
    loo:NAME       leave one value of NAME out: each value in turn is the test fold

Leave-one-out protocols refuse a field whose values are partition names (MSP-Podcast's
Train/Development/Test1...): leaving a test partition out in turn would train on the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sercli.core.errors import SercliError
from sercli.core.log import warn
from sercli.core.records import Record
from sercli.core.sentences import same_sentence_key
TRAIN_NAMES = {"train", "training"}
VAL_NAMES = {"val", "valid", "validation", "dev", "development"}
TEST_NAME = re.compile(r"(test|testing|eval|evaluation)[ _-]?[0-9]*")


@dataclass
class Fold:
    name: str
    description: str
    pool: list[Record]  # training pool: the validation part is carved from it
    test: list[Record]
    val: list[Record] | None = None  # a validation part given by the manifest
    given: bool = False  # the manifest's own partitions: records without a speaker are trusted apart


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
    elif spec.startswith("loo:") and spec[4:]:
        folds = _by_field(records, spec[4:], spec[4:])
    else:
        raise SercliError(f"--cv {spec!r}: expected loso, loso-session, kfold:K, field:NAME or loo:NAME")
    for fold in folds:
        if not fold.test:
            raise SercliError(f"--cv {spec}: {fold.name} ({fold.description}) has an empty test part")
        check_speakers(fold.pool + (fold.val or []), fold.test, allow_speaker_overlap, fold.name, fold.given)
    return folds


def split_role(value: Any) -> str | None:
    """"train", "val" or "test" for a partition name (any case), else None.

    train/training; dev/development/val/valid/validation; test/testing/eval/evaluation, each
    optionally numbered (MSP-Podcast: Train, Development, Test1, Test2, Test3). The other
    corpora sercli prepares have no official partitions (their ``split`` comes from a
    generic CSV), so these are all the names sercli reads as partitions.
    """
    v = str(value).strip().casefold()
    if v in TRAIN_NAMES:
        return "train"
    if v in VAL_NAMES:
        return "val"
    if TEST_NAME.fullmatch(v):
        return "test"
    return None


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


def check_speakers(
    train: list[Record], test: list[Record], allow: bool, where: str = "", given: bool = False
) -> None:
    """Refuse a test part that shares speakers with the training part, unless allowed.

    Records without a speaker count as one speaker '', except between a corpus's own
    partitions (``given``): MSP-Podcast leaves many speakers unknown in Train and in Test1,
    and its partitions, not sercli, keep them apart."""
    overlap = sorted({speaker(r) for r in train} & {speaker(r) for r in test} - ({""} if given else set()))
    if overlap and not allow:
        shown = ", ".join(repr(s) for s in overlap[:5]) + (" ..." if len(overlap) > 5 else "")
        raise SercliError(
            f"{where + ': ' if where else ''}speaker(s) {shown} are in both the training and the test part "
            "(records without a speaker count as one speaker ''); "
            "pass --allow-speaker-overlap to train and test on the same speakers anyway"
        )


def split_val(fold: Fold, val_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """(train, val) from a fold's pool: whole speakers go to validation, classes stratified.

    Among the splits the seed gives, the first that keeps every emotion of the pool in the
    training part and in the validation part is taken; else the first that keeps them in
    training with at least two in validation; else the first (`check_fold` then refuses it).
    """
    if fold.val is not None:
        return fold.pool, fold.val
    pool = fold.pool
    y = [str(r.get("emotion", "")) for r in pool]  # a regression run's records may have no emotion
    need = set(y)
    candidates = _val_candidates(fold, val_fraction, seed)
    good = [(tr, va) for tr, va in candidates if len(tr) and len(va) and {y[i] for i in tr} == need]
    full = [(tr, va) for tr, va in good if {y[i] for i in va} == need]
    usable = [(tr, va) for tr, va in good if len({y[i] for i in va}) >= 2]
    tr, va = (full or usable or candidates)[0]
    train, val = [pool[i] for i in tr], [pool[i] for i in va]
    if not train or not val:
        raise SercliError(f"{fold.name}: the validation split left no training or no validation data")
    return train, val


def _val_candidates(fold: Fold, val_fraction: float, seed: int) -> list[tuple[Any, Any]]:
    import warnings

    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, StratifiedShuffleSplit

    pool = fold.pool
    groups = [speaker(r) for r in pool]
    y = [str(r.get("emotion", "")) for r in pool]
    n_groups = len(set(groups))
    n_splits = max(2, round(1 / val_fraction))
    with warnings.catch_warnings():  # "least populated class has only N members": checked by check_fold
        warnings.simplefilter("ignore", UserWarning)
        if n_groups >= n_splits:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            return list(splitter.split(pool, y, groups))
        if n_groups >= 2:
            return list(GroupShuffleSplit(10, test_size=val_fraction, random_state=seed).split(pool, y, groups))
        warn(f"{fold.name}: one training speaker: the validation part is split by utterance, not by speaker")
        try:
            return list(StratifiedShuffleSplit(10, test_size=val_fraction, random_state=seed).split(pool, y))
        except ValueError:  # a class with a single item cannot be stratified
            items = range(len(pool))
            return list(GroupShuffleSplit(10, test_size=val_fraction, random_state=seed).split(pool, y, items))


def _shown(names) -> str:
    return ", ".join(repr(n) for n in sorted(names))


def check_fold(fold: Fold, train: list[Record], val: list[Record], labels: list[str], seed: int) -> list[str]:
    """Refuse a fold that cannot learn or choose fairly; return warnings for what is legitimate
    but changes what its numbers mean (a test part without some emotions)."""
    where = f"{fold.name} ({fold.description})"
    in_pool = {r["emotion"] for r in fold.pool}
    in_train = {r["emotion"] for r in train}
    for lab in labels:
        if lab in in_train:
            continue
        n_test = sum(r["emotion"] == lab for r in fold.test)
        if lab in in_pool and fold.val is None:
            raise SercliError(
                f"{where}: every validation split of seed {seed} takes all {lab!r} examples out of training; "
                "it needs more speakers with that emotion (or drop it with --classes)"
            )
        elsewhere = f"its test part has {n_test}" if n_test else "they are all in other parts"
        raise SercliError(
            f"{where}: no training examples of {lab!r} ({elsewhere}); a model cannot learn an emotion it never "
            "hears: use a protocol whose training parts hold every emotion, or drop it with --classes"
        )
    in_val = {r["emotion"] for r in val}
    if len(in_val) < 2:
        given = "the given validation part" if fold.val is not None else f"every validation split of seed {seed}"
        raise SercliError(
            f"{where}: {given} holds only {_shown(in_val)}: early stopping would favour one emotion; "
            "use validation speakers with several emotions (--val-speakers, --val-fraction)"
        )
    warnings = []
    if in_val != set(labels):
        warnings.append(f"{where}: the validation part has no {_shown(set(labels) - in_val)} (seed {seed}); "
                        "early stopping and --tune choose on the other emotions")
    in_test = {r["emotion"] for r in fold.test}
    if fold.test and in_test != set(labels):
        warnings.append(absent_warning(where + ": the test part", set(labels) - in_test, in_test))
    return warnings


def absent_warning(what: str, absent: set[str], present: set[str]) -> str:
    return (f"{what} has no {_shown(absent)}: its UA and macro-F1 average over "
            f"{len(present)} emotion{'s' if len(present) != 1 else ''} only ({', '.join(sorted(present))})")


# -- leakage guard: synthetic sentences that are also test transcripts -------------------------

# Case, accents' composition, punctuation and spacing do not make a sentence new.
normalise_text = same_sentence_key


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
    roles = {split_role(v) for v in names}
    if None not in roles and "train" in roles:
        raise SercliError(
            f"the {field!r} values are partition names ({', '.join(names)}): leaving one out in turn would "
            f"train on test partitions; use --cv field:{field} for the given partitions"
        )
    if len(names) < 2:
        raise SercliError(f"leave-one-{word}-out needs at least 2 {word}s; the records have {len(names)}")
    return _one_out(records, values, names, lambda name: f"{word} {name}")


def _kfold(records: list[Record], k: int, allow_overlap: bool) -> list[Fold]:
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    groups = [speaker(r) for r in records]
    y = [str(r.get("emotion", "")) for r in records]
    if len(records) < k:
        raise SercliError(f"kfold:{k} needs at least {k} records (there are {len(records)})")
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
    """Given partitions: train trains, val validates, each test partition is one fold."""
    values = _values(records, field)
    names = sorted(set(values))
    roles = {v: split_role(v) for v in names}
    unknown = [v for v in names if roles[v] is None]
    if unknown:
        known = [v for v in names if roles[v]]
        what = f"mixes partition names ({', '.join(known)}) with others" if known else "has values that are not partition names"
        raise SercliError(
            f"--cv field:{field}: {field!r} {what} ({', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}); "
            "use --cv field:X only with split names (train, dev/validation, test, Test1, ...); "
            f"for leave-one-value-out use --cv loo:{field}"
        )
    by_key: dict[str, list[str]] = {}
    for v in names:
        by_key.setdefault(partition_key(v), []).append(v)
    pool = [r for r, v in zip(records, values) if roles[v] == "train"]
    val = [r for r, v in zip(records, values) if roles[v] == "val"] or None
    tests = sorted(k for k, vs in by_key.items() if roles[vs[0]] == "test")
    if not pool:
        raise SercliError(f"--cv field:{field}: no training partition (train) among {', '.join(names)}")
    if not tests:
        raise SercliError(f"--cv field:{field}: no test partition (test, Test1, ...) among {', '.join(names)}")
    unknown = sum(1 for r in records if not speaker(r))
    if unknown:
        warn(f"--cv field:{field}: {unknown} records have no speaker; the given partitions are trusted to keep "
             "them apart (speakers that are known are checked)")
    folds = []
    for k, key in enumerate(tests):
        test = [r for r, v in zip(records, values) if partition_key(v) == key]
        folds.append(Fold(f"fold-{k:02d}", f"{field}={'/'.join(by_key[key])}", pool, test, val, given=True))
    return folds


def partition_key(value: Any) -> str:
    """One key per partition however it is spelt: train, val, or test/eval with its number
    (Test1, test_1, TEST-01 and "Test 1" are one partition; Test and Test1 are two)."""
    role = split_role(value)
    if role != "test":
        return str(role)
    v = str(value).strip().casefold()
    family = "eval" if v.startswith("eval") else "test"
    digits = re.sub(r"[^0-9]", "", v)
    return family + (str(int(digits)) if digits else "")


def _one_out(records: list[Record], values: list[str], names: list[str], describe) -> list[Fold]:
    """One fold per value: its records are the test fold, all others the training pool."""
    folds = []
    for k, name in enumerate(names):
        test = [r for r, v in zip(records, values) if v == name]
        pool = [r for r, v in zip(records, values) if v != name]
        folds.append(Fold(f"fold-{k:02d}", describe(name), pool, test))
    return folds
