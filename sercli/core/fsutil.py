"""Files the safe way: atomic writes, exclusive locks, and file names made from data.

Everything sercli writes goes through these, so that a killed run never leaves half a file
under a final name, two processes never write the same thing at once, and no field of a
record (an id, a voice, a speaker) can name a path outside the folder the user chose.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sercli.core.errors import SercliError

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_name(text: str) -> str:
    """A file name made from ``text`` (an id, a voice): ``text`` itself when it is already a
    plain name, else a slug of it plus a hash of the original, so that two different texts
    never share a file name and no text can reach outside a folder (``..``, ``/``, ``\\``)."""
    text = str(text)
    if _SAFE.fullmatch(text) and ".." not in text:
        return text
    slug = _UNSAFE_RUN.sub("_", text).replace("..", "_").strip("._-")[:80] or "x"
    return f"{slug}-{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def inside(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, refused unless it stays inside ``root`` (for paths read from files
    such as a run folder's manifest, which a user or a tool may have edited)."""
    root = Path(root).resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise SercliError(f"{relative!s}: names a path outside {root}; refusing to use it")
    return path


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True, per_thread: bool = False) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; renamed to ``path`` when the block ends
    without an error (after an fsync), removed when it fails: ``path`` is whole or absent.

    The name is ``.NAME.PID.tmp`` (``.NAME.PID.THREAD.tmp`` with ``per_thread``, for files
    several threads of one process write), so a killed writer's leftover is recognisable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    thread = f".{threading.get_ident()}" if per_thread else ""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{thread}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def repair_torn_tail(path: str | Path) -> None:
    """Cut a partial last line (a run killed mid-append) so that appends start clean; a file
    that is empty or ends with a newline is left alone."""
    path = Path(path)
    if path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        fh.truncate(data.rfind(b"\n") + 1)


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of the bytes of ``path``, read in blocks; OSError if it cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def exclusive_lock(path: str | Path, what: str):
    """Hold an exclusive lock on ``path`` (created if missing) while the returned file stays
    open; released on close or when the process dies, however it dies. ``what`` names the
    thing being protected in the error another process gets."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise SercliError(f"{what} is being written by another sercli process; wait for it to finish") from None
    return fh


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
