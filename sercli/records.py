"""JSON Lines records: one record per line, read from a path or ``-`` (stdin).

A record is a dict. Fields the pipeline uses:
  id, emotion, text, audio, speaker, session, gender, transcript, duration,
  source ("real" | "synthetic"), features ({"store", "key", "shape"}), provenance.
Each stage keeps the fields it got and adds its own.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from sercli.errors import SercliError


def read_records(path: str | Path, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Read and validate every record up front, so bad input fails before heavy work."""
    required = tuple(required)
    name = "<stdin>" if str(path) == "-" else str(path)
    if str(path) == "-":
        if sys.stdin.isatty():
            raise SercliError("Expected records on stdin (use a file path, or pipe records in)")
        lines = sys.stdin.read().splitlines()
        base = Path.cwd()
    else:
        p = Path(path)
        if not p.exists():
            raise SercliError(f"{name}: no such file")
        lines = p.read_text(encoding="utf-8").splitlines()
        base = p.resolve().parent
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SercliError(f"{name} line {lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise SercliError(f"{name} line {lineno}: expected a JSON object")
        missing = [f for f in required if f not in rec or rec[f] in (None, "")]
        if missing:
            raise SercliError(f"{name} line {lineno}: missing {', '.join(repr(m) for m in missing)}")
        rec.setdefault("id", f"line{lineno}")
        if "audio" in rec and rec["audio"] and not Path(rec["audio"]).is_absolute():
            rec["audio"] = str(base / rec["audio"])
        records.append(rec)
    return records


def read_many(paths: Iterable[str | Path], required: Iterable[str] = ()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        out.extend(read_records(p, required))
    return out


def read_existing(path: str | Path | None) -> list[dict[str, Any]]:
    """Records already written by an earlier (possibly killed) run; a torn last line is ignored."""
    if path is None or str(path) == "-" or not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class RecordWriter:
    """Writes one JSON record per line and flushes it, so a killed run loses nothing."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()
        self.count += 1


@contextmanager
def open_writer(path: str | Path | None, append: bool = False) -> Iterator[RecordWriter]:
    """``None`` or ``-`` writes to stdout; a path is created (or appended to, for resuming)."""
    if path is None or str(path) == "-":
        yield RecordWriter(sys.stdout)
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if append and p.exists() and p.stat().st_size:
        _repair_torn_tail(p)
    with open(p, "a" if append else "w", encoding="utf-8") as fh:
        yield RecordWriter(fh)


def _repair_torn_tail(p: Path) -> None:
    """A run killed mid-write may leave a partial last line; drop it before appending."""
    data = p.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(p, "r+b") as fh:
        fh.truncate(cut)
