"""JSON Lines records: one record per line, read from a path or ``-`` (stdin).

A record is a dict. Fields the pipeline uses:
  id, emotion, text, audio, speaker, session, gender, transcript, duration,
  source ("real" | "synthetic"), language (BCP-47: "en", "de"), features ({"store", "key", "shape"}),
  provenance.
Each stage keeps the fields it got and adds its own.

Lines end at ``\\n`` only: a record written with ``ensure_ascii=False`` may hold U+2028 and
other characters that ``str.splitlines`` would take for line ends.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from sercli.core.errors import RecordError, SercliError

# One record: a JSON object of a records file (see RECORD_FIELDS in sercli.api for its fields).
Record = dict[str, Any]

# Known fields and the JSON type each must have (null stands for "absent", except for id).
STRING_FIELDS = ("id", "emotion", "text", "audio", "speaker", "session", "gender", "transcript",
                 "source", "raw_label", "voice", "split", "language")
NUMBER_FIELDS = ("duration",)
OBJECT_FIELDS = ("features", "provenance")


def read_records(path: str | Path, required: Iterable[str] = (), lines: list[int] | None = None) -> list[dict[str, Any]]:
    """Read and validate every record up front, so bad input fails before heavy work
    (``lines``, when given, gets each record's line number: sercli.core.inputs names them).

    An input without a single record is an error: a pipe whose first command failed
    delivers nothing, and a run over nothing would look like success."""
    required = tuple(required)
    stdin = str(path) == "-"
    name = "<stdin>" if stdin else str(path)
    remember_input(path)
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
        rec = parse_line(line, f"{name} line {lineno}")
        missing = [f for f in required if f not in rec or rec[f] in (None, "")]
        if missing:
            raise SercliError(f"{name} line {lineno}: missing {', '.join(repr(m) for m in missing)}")
        _check_types(rec, f"{name} line {lineno}")
        _check_values(rec, f"{name} line {lineno}")
        rec.setdefault("id", f"line{lineno}")
        if "audio" in rec and rec["audio"] and not Path(rec["audio"]).is_absolute():
            rec["audio"] = str(base / rec["audio"])
        records.append(rec)
        if lines is not None:
            lines.append(lineno)
    if not records:
        if stdin:
            raise SercliError("no records on stdin (did the command before the pipe fail?)")
        raise SercliError(f"{name}: no records in this file" + ("" if data.strip() else " (it is empty)"))
    return records


class _Duplicate(ValueError):
    pass


class _Odd:
    """Set by the decoder when a line holds NaN, Infinity or a number too large for a float."""

    seen = False
    escapes = False


def _pairs(pairs: list) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):  # {"id": "a", "id": "../b"}: which one counts depends on the reader
        seen: set = set()
        raise _Duplicate(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return record


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _Odd.seen = True
    return value


def _constant(text: str) -> float:
    _Odd.seen = True
    return float(text)


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=_float, parse_constant=_constant)


def parse_line(line: str, where: str) -> dict[str, Any]:
    """One JSON object, or SercliError naming ``where`` and what is wrong."""
    _Odd.seen = False
    _Odd.escapes = "\\u" in line  # a surrogate can only come from an escape: UTF-8 has none
    try:
        rec = _DECODER.decode(line)
    except json.JSONDecodeError as exc:
        raise SercliError(f"{where}: not valid JSON ({exc.msg})") from None
    except _Duplicate as exc:
        raise SercliError(f"{where}: field {exc.args[0]!r} appears twice in one record") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise SercliError(f"{where}: not valid JSON ({' '.join(str(exc).split(';')[0].split())})") from None
    except RecursionError:
        raise SercliError(f"{where}: not valid JSON (nested too deeply)") from None
    if not isinstance(rec, dict):
        got = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(rec), "a number")
        raise SercliError(f"{where}: expected a JSON object {{...}}, not {got}")
    return rec


def _check_values(rec: dict[str, Any], where: str) -> None:
    """No NaN or infinity (not JSON; Python reads them) and no unpaired surrogate (\\ud800 is
    valid JSON but not Unicode text: writing it fails, after the work was done and paid for)."""
    bad = _non_finite(rec) if _Odd.seen else None
    if bad:
        raise SercliError(f"{where}: field {bad!r} holds NaN or infinity; records hold finite numbers only")
    bad = _surrogate(rec) if _Odd.escapes else None
    if bad:
        raise SercliError(f"{where}: field {bad!r} holds an unpaired surrogate (\\ud800-\\udfff), "
                          "which is not Unicode text")


def _surrogate(value: Any, where: str = "") -> str | None:
    """The path of the first string (or key) holding a lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "(the record)"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        sub = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and _surrogate(key):
            return sub
        found = _surrogate(item, sub)
        if found:
            return found
    return None


def _lines(data: bytes, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) for each ``\\n``-terminated line; non-UTF-8 bytes name their line.
    A UTF-8 byte order mark (Windows editors write one) is not part of the first record."""
    data = data.removeprefix(b"\xef\xbb\xbf")
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
                                  or not _finite(value)):
            raise bad(field, "a finite number")
    for field in OBJECT_FIELDS:
        if rec.get(field) is not None and not isinstance(rec[field], dict):
            raise bad(field, "a JSON object")


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


_STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def is_stdout(path: str | Path | None) -> bool:
    """``-o -`` and ``-o /dev/stdout``: the records stream (descriptor 1 itself points at
    stderr while sercli runs, see sercli.core.stdio)."""
    return path is None or str(path) in _STDOUT_NAMES


# Files this command reads records from: (device, inode) -> how the user named it.
_inputs: dict[tuple[int, int], str] = {}


def _identity(path: str | Path | int) -> tuple[int, int] | None:
    try:
        st = os.fstat(path) if isinstance(path, int) else os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def remember_input(path: str | Path) -> None:
    """Note that the command reads ``path`` (``-``: whatever file stdin is), so that no output
    of the same command can be that file (see ``refuse_input``)."""
    stdin = str(path) == "-"
    try:
        key = _identity(sys.stdin.fileno() if stdin else path)
    except (OSError, ValueError, AttributeError):  # no stdin, or a replaced one
        key = None
    if key is not None:
        _inputs[key] = "stdin" if stdin else str(path)


def forget_inputs() -> None:
    """A new command starts (the CLI calls this; tests run several in one process)."""
    _inputs.clear()


def refuse_input(path: str | Path | None) -> None:
    """Refuse to write to a file the command reads its records from (``-o IN``, ``> IN`` or
    ``>> IN``): the input would be lost or mixed with the output, and a killed run would leave
    neither whole."""
    if not _inputs:
        return
    if path is None or is_stdout(path):
        from sercli.core.stdio import stdout_fd

        key, shown = _identity(stdout_fd()), "stdout"
    else:
        key, shown = _identity(path), str(path)
    if key is not None and key in _inputs:
        source = _inputs[key]
        also = "" if source == shown else f" ({source})"
        raise SercliError(f"{shown} is also the file the records are read from{also}; "
                          "write the output to another file")


def read_many(paths: Iterable[str | Path], required: Iterable[str] = ()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        out.extend(read_records(p, required))
    return out


def read_existing(path: str | Path | None) -> list[dict[str, Any]]:
    """Records already written by an earlier (possibly killed) run. A torn last line is
    ignored (the writer drops it before appending); any other unreadable line is an error,
    because skipping it would redo (and, with a paid backend, pay for) its work again."""
    if path is None or is_stdout(path) or not Path(path).exists():
        return []
    data = Path(path).read_bytes().removeprefix(b"\xef\xbb\xbf")
    lines = data.split(b"\n")
    torn = len(lines) if not data.endswith(b"\n") else None  # the last line, if unterminated
    out = []
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip() or lineno == torn:  # even a whole record there is cut off on append
            continue
        try:
            rec = parse_line(raw.decode("utf-8"), "")
        except (UnicodeDecodeError, SercliError):
            raise SercliError(
                f"{path} line {lineno}: not a valid record; this output file is damaged "
                "(fix or delete that line, then re-run)"
            ) from None
        out.append(rec)
    return out


class RecordWriter:
    """Writes one JSON record per line and flushes it, so a killed run loses nothing."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        from sercli.core import fastexit

        if fastexit.first_signal():  # interrupted, and some code swallowed it: stop here
            raise fastexit.Interrupted(fastexit.first_signal())
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
    refuse_input(path)
    if path is None or is_stdout(path):
        yield
        return
    from sercli.core.fsutil import exclusive_lock

    fh = exclusive_lock(path, str(path))
    try:
        yield
    finally:
        fh.close()


@contextmanager
def open_writer(path: str | Path | None, append: bool = False) -> Iterator[RecordWriter]:
    """``None`` or ``-`` writes to stdout; a path is created (or appended to, for resuming)."""
    refuse_input(path)
    if path is None or is_stdout(path):
        from sercli.core.stdio import records_stream

        yield RecordWriter(records_stream())
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if append and p.exists() and p.stat().st_size:
        _repair_torn_tail(p)
    with open(p, "a" if append else "w", encoding="utf-8") as fh:
        yield RecordWriter(fh)


def _repair_torn_tail(p: Path) -> None:
    """A run killed mid-write may leave a partial last line; drop it before appending."""
    from sercli.core.fsutil import repair_torn_tail

    repair_torn_tail(p)
