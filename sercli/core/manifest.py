"""From a corpus reader's records to a manifest: label rules, missing files, durations, summary.

Scanning metadata is cheap, so every record is scanned and checked (labels, duplicate ids)
before any audio file is opened; only then are durations read and records written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sercli.core import log
from sercli.core.audio import duration
from sercli.contract.corpus import Corpus
from sercli.core.errors import SercliError
from sercli.core.records import RecordWriter
from sercli.core.labels import CANONICAL, LabelRules

# Fields in the order they appear in each manifest line; other fields a reader adds follow.
FIELDS = ("id", "audio", "emotion", "raw_label", "speaker", "session", "gender", "transcript")
SHOWN = 5  # items a message quotes before "... (N more)"


@dataclass
class Manifest:
    """Records selected from a corpus, and after writing, what was written or failed."""

    records: list[dict[str, Any]]
    dropped: Counter
    missing: list[dict[str, Any]]
    provenance: dict[str, Any]
    written: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def prepare(reader: Corpus, corpus: str, path: Path, rules: LabelRules, output: str | None) -> Manifest:
    """Select the records of the corpus at ``path`` and write the manifest to ``output``
    (None or ``-``: stdout). A file is written whole or not at all."""
    import io
    import os

    from sercli.core.fsutil import atomic_write_text
    from sercli.core.records import is_stdout, open_writer, refuse_input, remember_input

    root = path.expanduser().resolve()
    if not root.exists():
        raise SercliError(f"{path}: no such file or folder")
    remember_input(root)  # -o must not replace the corpus's own file (generic: the CSV)
    refuse_input(output)
    # a corpus reader that changes the working folder moves nothing
    target = None if is_stdout(output) else os.path.abspath(output)
    selected = select(reader, root, rules)  # errors here leave no output file behind
    if not selected.records:
        raise SercliError(f"no records left for {corpus} at {path} (check --classes and the warnings above)")
    if target is None:
        with open_writer(output) as writer:
            write(selected, writer)
    else:
        # whole or not at all: a killed run leaves no half manifest, and of two runs writing
        # the same file, one complete manifest wins instead of their lines interleaving
        buffer = io.StringIO()
        write(selected, RecordWriter(buffer))
        atomic_write_text(target, buffer.getvalue())
    return selected


def select(corpus: Corpus, root: Path, rules: LabelRules) -> Manifest:
    """Scan, map and filter labels, check ids, and set aside files missing on disk."""
    kept, dropped = _apply_labels(list(corpus.scan(root)), rules)
    _check_unique(kept)
    present, missing = [], []
    for record in kept:
        (present if Path(record["audio"]).is_file() else missing).append(record)
    if missing:
        log.warn(
            f"{len(missing)} files listed in the corpus metadata are missing on disk and were skipped: "
            f"{_some(r['audio'] for r in missing)}"
        )
    return Manifest(present, dropped, missing, {**corpus.provenance(), **rules.describe()})


def write(manifest: Manifest, writer: RecordWriter) -> None:
    """Read each file's duration and write its record; an unreadable file is reported and skipped."""
    with log.progress() as bar:
        task = bar.add_task("Reading durations", total=len(manifest.records))
        for record in manifest.records:
            try:
                seconds = duration(record["audio"])
            except Exception as exc:  # soundfile names the problem (not audio, truncated header...)
                manifest.failed.append(record["id"])
                log.warn(f"{record['id']}: cannot read {record['audio']}: {exc}")
            else:
                out = _ordered(record, seconds, manifest.provenance)
                writer.write(out)
                manifest.written.append(out)
            bar.advance(task)


def _apply_labels(records: list[dict[str, Any]], rules: LabelRules) -> tuple[list[dict], Counter]:
    kept, dropped, unknown = [], Counter(), Counter()
    for record in records:
        label = rules.label(record["raw_label"], record.get("emotion"))
        if label is None:
            unknown[record["raw_label"]] += 1
        elif rules.keeps(label):
            kept.append({**record, "emotion": label})
        else:
            dropped[label] += 1
    if unknown:
        first = unknown.most_common(1)[0][0]
        raise SercliError(
            f"{len(unknown)} labels are not in sercli's emotion vocabulary: "
            f"{_some(f'{k} ({n})' for k, n in unknown.most_common())}; "
            f"map them with e.g. --map {first}=other (vocabulary: {', '.join(CANONICAL)})"
        )
    return kept, dropped


def _check_unique(records: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for record in records:
        if record["id"] in seen:
            raise SercliError(
                f"id {record['id']!r} appears twice ({seen[record['id']]} and {record['audio']}); "
                "give each file a unique id (generic CSV: an id column)"
            )
        seen[record["id"]] = record["audio"]


def _ordered(record: dict[str, Any], seconds: float, provenance: dict[str, Any]) -> dict[str, Any]:
    out = {k: record[k] for k in FIELDS if record.get(k) is not None}
    out["duration"] = round(seconds, 4)
    out["source"] = "real"
    out.update((k, v) for k, v in record.items() if k not in out and v is not None)
    out["provenance"] = provenance
    return out


def _some(items) -> str:
    items = list(items)
    more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(str(i) for i in items[:SHOWN]) + more
