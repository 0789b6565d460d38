"""The one check of the records a command reads (train, eval, predict, filter, export,
extract, synthesize, degrade): every input file read, then, over all of them together,

- duplicate ids refused in one line naming the first few and their files (``--dedupe``
  keeps the first record of each id and says how many it dropped); one id with two
  different emotions refused always: which one is right is not ours to guess;
- emotions normalised to the canonical names where the mapping is unambiguous (``Anger``,
  ``HAPPINESS``, EmoDB's ``W``: see `LabelCheck`), said once on stderr; a label outside
  every known set is an error unless the command is told the label set (``--labels``).

Records that pass unchanged are the very objects read: a clean input gives the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from sercli.core.errors import SercliError
from sercli.core.labels import CANONICAL, canonical
from sercli.core.log import info, warn
from sercli.core.records import read_records

Record = dict[str, Any]
SHOWN = 3  # duplicates named in the one line (then "and N more")
MIN_PER_CLASS = 5  # fewer training records of an emotion than this: a warning (`warn_scarce`)


@dataclass
class LabelCheck:
    """How a command takes the emotions of its records.

    ``allowed``: the label set (``--labels a,b,c``, or the labels a run was trained on); None:
    the canonical emotions. ``strict``: a label outside the set is an error (commands whose
    labels become classes or are scored); else it passes as it is (a label sercli can
    normalise still is). ``option``: how the error tells the user to name the label set."""

    allowed: tuple[str, ...] | None = None
    strict: bool = True
    option: str = "--labels"

    @classmethod
    def from_cli(cls, labels: str | None, strict: bool = True) -> "LabelCheck":
        if labels is None:
            return cls(None, strict)
        names = tuple(dict.fromkeys(n.strip() for n in labels.split(",") if n.strip()))
        if len(names) < 2:
            raise SercliError(f"--labels {labels!r}: expected the comma-separated labels of the set, "
                              "at least two (e.g. angry,happy,amusement)")
        return cls(names, strict)

    def normalise(self, label: str) -> str | None:
        """The label as the set spells it, or None when it is not in the set."""
        known = self.allowed or CANONICAL
        if label in known:
            return label
        text = label.strip()
        if self.allowed is not None:
            folded = {_fold(a): a for a in self.allowed}
            if _fold(text) in folded:
                return folded[_fold(text)]
            same = {canonical(a): a for a in self.allowed if canonical(a)}
            return same.get(canonical(text) or _corpus_label(text)[0] or "")
        return canonical(text) or _corpus_label(text)[0]

    def refusal(self, label: str, where: str) -> SercliError:
        if self.allowed is not None:
            return SercliError(f"{where}: emotion {label!r} is not in {self.option} ({', '.join(self.allowed)})")
        _, readings = _corpus_label(label.strip())
        if len(readings) > 1:
            return SercliError(f"{where}: emotion {label!r} reads differently in different corpora "
                               f"({', '.join(f'{c}: {e}' for c, e in readings)}); write the emotion out, "
                               f"or name the label set with {self.option} a,b,c")
        return SercliError(f"{where}: emotion {label!r} is not one sercli knows ({', '.join(CANONICAL)}); "
                           f"name the label set with {self.option} a,b,c if it is meant")


def _fold(label: str) -> str:
    return label.strip().lower().replace("-", "_").replace(" ", "_")


_corpus_maps: dict[str, dict[str, str]] | None = None


def _corpus_label(label: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(canonical emotion, None when ambiguous or unknown; [(corpus, emotion)] it reads as)
    from the corpus readers' own label codes (``Corpus.raw_labels``), loaded on first need."""
    global _corpus_maps
    if _corpus_maps is None:
        from sercli.core import plugins

        _corpus_maps = {}
        try:
            for name in plugins.names("corpus"):
                table = getattr(plugins.get_class("corpus", name), "raw_labels", None) or {}
                _corpus_maps[name] = {_fold(str(k)): v for k, v in table.items() if canonical(str(v))}
        except SercliError:  # a broken plugin setup: the canonical names still work
            pass
    key = _fold(label)
    readings = [(corpus, table[key]) for corpus, table in sorted(_corpus_maps.items()) if key in table]
    found = {emotion for _, emotion in readings}
    return (found.pop() if len(found) == 1 else None), readings


def read_inputs(
    groups: Sequence[tuple[Iterable[str | Path], Iterable[str]]],
    dedupe: bool = False,
    labels: LabelCheck | None = None,
    targets: Sequence[str] = (),
) -> list[list[Record]]:
    """The records of each group ``(paths, required fields)``, checked together: duplicate ids
    (across every file of every group), with ``labels`` the emotions (see the module), and
    the values of ``targets`` (numbers where given: sercli.core.targets)."""
    read: list[list[tuple[Record, str]]] = []
    seen: set[Path] = set()
    for paths, required in groups:
        group = []
        for path in paths:
            again = str(path) != "-" and Path(path).resolve() in seen
            seen.add(Path(path).resolve())
            group += read_located(path, required, again)
        read.append(group)
    if targets:
        from sercli.core.targets import check_values

        check_values((pair for group in read for pair in group), list(targets))
    return check_located(read, dedupe, labels)


def read_located(path: str | Path, required: Iterable[str] = (), again: bool = False) -> list[tuple[Record, str]]:
    """(record, "FILE line N") for each record of ``path`` (``again``: the file was given before)."""
    lines: list[int] = []
    recs = read_records(path, tuple(required), lines)
    name = "stdin" if str(path) == "-" else f"{path} (given again)" if again else str(path)
    return [(r, f"{name} line {n}") for r, n in zip(recs, lines)]


def check_located(groups: list[list[tuple[Record, str]]], dedupe: bool = False,
                  labels: LabelCheck | None = None) -> list[list[Record]]:
    """The checks of `read_inputs` on groups of (record, where it was read) pairs."""
    if labels is not None:
        changed: dict[str, str] = {}
        for i, group in enumerate(groups):
            groups[i], more = _labelled(group, labels)
            changed.update(more)
        if changed:  # once for the whole input
            info(f"Emotions normalised: {', '.join(f'{k!r} -> {v!r}' for k, v in sorted(changed.items()))}")
    return _unique(groups, dedupe)


def check_records(records: list[Record], where: str = "the input", dedupe: bool = False,
                  labels: LabelCheck | None = None) -> list[Record]:
    """`read_inputs`'s checks on records a command has already read (``where`` names them)."""
    return check_located([[(r, f"{where} record {i}") for i, r in enumerate(records, 1)]], dedupe, labels)[0]


def _labelled(group: list[tuple[Record, str]], check: LabelCheck) -> tuple[list[tuple[Record, str]], dict[str, str]]:
    out, changed = [], {}
    for rec, where in group:
        label = rec.get("emotion")
        if label is None:
            out.append((rec, where))
            continue
        new = check.normalise(label)
        if new is None:
            if check.strict:
                raise check.refusal(label, where)
            new = label
        if new != label:
            changed[label] = new
            rec = {**rec, "emotion": new}
        out.append((rec, where))
    return out, changed


def _unique(groups: list[list[tuple[Record, str]]], dedupe: bool) -> list[list[Record]]:
    first: dict[str, tuple[Record, str]] = {}
    dupes: dict[str, list[str]] = {}
    for group in groups:
        for rec, where in group:
            rid = rec.get("id")
            if rid not in first:
                first[rid] = (rec, where)
                continue
            seen, at = first[rid]
            if seen.get("emotion") != rec.get("emotion"):
                raise SercliError(f"record id {rid!r} has two emotions: {seen.get('emotion')!r} ({at}) and "
                                  f"{rec.get('emotion')!r} ({where}); an id names one utterance: fix the records")
            dupes.setdefault(rid, [at]).append(where)
    if not dupes:
        return [[rec for rec, _ in group] for group in groups]
    n = sum(len(w) - 1 for w in dupes.values())
    if not dedupe:
        shown = "; ".join(f"{rid!r} ({', '.join(wheres[:3])})"
                          for rid, wheres in list(dupes.items())[:SHOWN])
        more = f"; and {len(dupes) - SHOWN} more ids" if len(dupes) > SHOWN else ""
        raise SercliError(f"duplicate record ids ({len(dupes)} ids, {n} extra records): {shown}{more}; "
                          "each record must appear once (--dedupe keeps the first of each)")
    warn(f"--dedupe: dropped {n} duplicate record{'s' if n != 1 else ''} of {len(dupes)} id"
         f"{'s' if len(dupes) != 1 else ''} (kept the first of each)")
    kept = {id(rec) for rec, _ in first.values()}
    return [[rec for rec, _ in group if id(rec) in kept] for group in groups]


def warn_scarce(parts: list[list[Record]], labels: list[str], n: int = MIN_PER_CLASS) -> None:
    """One warning naming each emotion with fewer than ``n`` records in a training part
    (``parts``: each job's; the count shown is the smallest)."""
    few = []
    for lab in labels:
        k = min(sum(r.get("emotion") == lab for r in part) for part in parts) if parts else 0
        if k < n:
            few.append(f"{lab!r} ({k})")
    if few:
        where = " of a job" if len(parts) > 1 else ""
        warn(f"fewer than {n} training records{where} of {', '.join(few)}: a model learns little from so few, "
             "and its recall on them is noise (more data, or drop them with --classes)")
