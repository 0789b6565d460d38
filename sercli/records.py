"""JSON Lines records: one record per line, read from a path or ``-`` (stdin).

A record is a dict. Fields the pipeline uses:
  id, emotion, text, audio, speaker, session, gender, transcript, duration,
  source ("real" | "synthetic"), features ({"store", "key", "shape"}), provenance.
Each stage keeps the fields it got and adds its own.

Lines end at ``\\n`` only: a record written with ``ensure_ascii=False`` may hold U+2028 and
other characters that ``str.splitlines`` would take for line ends.
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from sercli.errors import RecordError, SercliError

# Known fields and the JSON type each must have (null stands for "absent", except for id).
STRING_FIELDS = ("id", "emotion", "text", "audio", "speaker", "session", "gender", "transcript",
                 "source", "raw_label", "voice", "split")
NUMBER_FIELDS = ("duration",)
OBJECT_FIELDS = ("features", "provenance")


def read_records(path: str | Path, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Read and validate every record up front, so bad input fails before heavy work.

    An input without a single record is an error: a pipe whose first command failed
    delivers nothing, and a run over nothing would look like success."""
    required = tuple(required)
    stdin = str(path) == "-"
    name = "<stdin>" if stdin else str(path)
    if stdin:
        if sys.stdin.isatty():
            raise SercliError("Expected records on stdin (use a file path, or pipe records in)")
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
        base = Path.cwd()
    else:
        p = Path(path)
        if not p.exists():
            raise SercliError(f"{name}: no such file")
        if p.is_dir():
            raise SercliError(f"{name}: is a folder, not a records file")
        data = p.read_bytes()
        base = p.resolve().parent
    records = []
    for lineno, line in _lines(data, name):
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
        _check_types(rec, f"{name} line {lineno}")
        rec.setdefault("id", f"line{lineno}")
        if "audio" in rec and rec["audio"] and not Path(rec["audio"]).is_absolute():
            rec["audio"] = str(base / rec["audio"])
        records.append(rec)
    if not records:
        if stdin:
            raise SercliError("no records on stdin (did the command before the pipe fail?)")
        raise SercliError(f"{name}: no records in this file" + ("" if data.strip() else " (it is empty)"))
    return records


def _lines(data: bytes, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) for each ``\\n``-terminated line; non-UTF-8 bytes name their line."""
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            yield lineno, raw.decode("utf-8").removesuffix("\r")
        except UnicodeDecodeError as exc:
            raise SercliError(
                f"{name} line {lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); records files are UTF-8 JSON Lines"
            ) from None


def _check_types(rec: dict[str, Any], where: str) -> None:
    def bad(field: str, expected: str) -> SercliError:
        got = type(rec[field]).__name__ if rec[field] is not None else "null"
        got = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
               "list": "a list", "dict": "an object"}.get(got, got)
        return SercliError(f"{where}: field {field!r} must be {expected}, not {got} ({_short(rec[field])})")

    if "id" in rec and (not isinstance(rec["id"], str) or not rec["id"].strip()):
        raise bad("id", "a non-empty string (quote numeric ids: \"id\": \"12\")")
    for field in STRING_FIELDS:
        if rec.get(field) is not None and not isinstance(rec[field], str):
            raise bad(field, "a string")
    for field in NUMBER_FIELDS:
        value = rec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise bad(field, "a finite number")
    for field in OBJECT_FIELDS:
        if rec.get(field) is not None and not isinstance(rec[field], dict):
            raise bad(field, "a JSON object")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def read_many(paths: Iterable[str | Path], required: Iterable[str] = ()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        out.extend(read_records(p, required))
    return out


def read_existing(path: str | Path | None) -> list[dict[str, Any]]:
    """Records already written by an earlier (possibly killed) run. A torn last line is
    ignored (the writer drops it before appending); any other unreadable line is an error,
    because skipping it would redo (and, with a paid backend, pay for) its work again."""
    if path is None or str(path) == "-" or not Path(path).exists():
        return []
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    torn = len(lines) if not data.endswith(b"\n") else None  # the last line, if unterminated
    out = []
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip() or lineno == torn:  # even a whole record there is cut off on append
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SercliError(
                f"{path} line {lineno}: not a valid record; this output file is damaged "
                "(fix or delete that line, then re-run)"
            ) from None
        if isinstance(rec, dict):
            out.append(rec)
    return out


class RecordWriter:
    """Writes one JSON record per line and flushes it, so a killed run loses nothing."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        try:
            line = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except ValueError:  # NaN or infinity: not JSON, and not a usable value downstream
            raise RecordError(
                f"record {record.get('id')!r}: field {_non_finite(record) or '?'} holds NaN or "
                "infinity; the record was not written"
            ) from None
        self.stream.write(line + "\n")
        self.stream.flush()
        self.count += 1


def _non_finite(value: Any, where: str = "") -> str | None:
    """The path (``features.shape[2]``) of the first NaN or infinity in ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(the record)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        sub = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        found = _non_finite(item, sub)
        if found:
            return found
    return None


@contextmanager
def output_lock(path: str | Path | None) -> Iterator[None]:
    """Hold an exclusive lock on the output file ``path`` (created if missing) for the block:
    a second process resuming the same file fails at once instead of redoing (and paying for)
    the same records. Take it before reading what the file already holds. Stdout: no lock."""
    if path is None or str(path) == "-":
        yield
        return
    from sercli.fsutil import exclusive_lock

    fh = exclusive_lock(path, str(path))
    try:
        yield
    finally:
        fh.close()


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
