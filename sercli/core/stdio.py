"""The CLI's standard streams: stdout carries records and nothing else.

``take_over()`` (called once by ``sercli.cli.main``, never at import) does three things:

- A closed descriptor 0, 1 or 2 (``sercli ... >&-``) is reopened on /dev/null, so that no file
  sercli opens later gets that number (an output file on descriptor 2 would receive the
  progress bar). Records written to a closed stdout fail with one line, not a traceback.
- The real stdout moves to a private, non-inherited descriptor, and descriptor 1 points at
  stderr from then on: C code, subprocesses and anything else that writes to descriptor 1
  lands on stderr, never among the records.
- ``sys.stdout`` becomes a stream that writes to the real stdout, except for a write made while
  a plugin's code is on the call stack (a ``print`` when a backend generates, in an ``atexit``
  handler it registered) or from a thread other than the main one (a TTS engine's workers, a
  thread a plugin started): that goes to stderr. Records reach the real stdout directly
  (``records_stream``), from any thread.
"""

from __future__ import annotations

import errno
import io
import os
import sys

_fd: int | None = None  # the real stdout, once taken over
_plugin_packages: set[str] = set()  # top-level package names of plugin code


def add_plugin_package(module_name: str) -> None:
    """Count code under ``module_name``'s top-level package as a plugin's (see ``_Stdout``)."""
    top = str(module_name).partition(":")[0].partition(".")[0].strip()
    if top and top != "sercli":
        _plugin_packages.add(top)


def from_plugin(depth: int = 2) -> bool:
    """Whether a plugin's code is on the caller's stack, or the caller runs in a thread other
    than the main one (sercli writes to stdout from the main thread only; other threads run
    plugin code: a TTS engine's requests, or a thread a plugin started)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return True
    if not _plugin_packages:
        return False
    frame = sys._getframe(depth)
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if name.partition(".")[0] in _plugin_packages:
            return True
        frame = frame.f_back
    return False


class _Closed(io.TextIOBase):
    """stdout when descriptor 1 was closed: writing records there fails in one line."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed; write the records to a file with -o")


class _Stdout(io.TextIOBase):
    """``sys.stdout``: the real stdout, except for writes by plugin code (to stderr)."""

    def __init__(self, real) -> None:
        self.real = real

    def _target(self):
        return sys.stderr if from_plugin(3) else self.real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self.real.flush()

    def close(self) -> None:  # nobody closes the records stream but the process
        self.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.real.fileno()

    def isatty(self) -> bool:
        return self.real.isatty()

    def __getattr__(self, name):  # encoding, errors, buffer, line_buffering, ...
        return getattr(self.real, name)


def records_stream():
    """Where records go: the real stdout (also when a plugin replaced ``sys.stdout``)."""
    stream = sys.stdout
    return getattr(stream, "real", stream) if isinstance(stream, _Stdout) else stream


def stdout_fd() -> int:
    """The descriptor of the real stdout (1 unless taken over)."""
    return 1 if _fd is None else _fd


def take_over() -> None:
    global _fd
    closed = _reopen_closed()
    if 2 in closed:
        sys.stderr = open(os.devnull, "w")
    if 1 in closed:
        sys.stdout = _Closed()
        return
    if _fd is not None or sys.stdout is None:
        return
    old = sys.stdout
    try:
        old.flush()
        fd = os.dup(1)  # not inherited: a worker or subprocess never holds the records pipe
        real = io.TextIOWrapper(open(fd, "wb"), encoding=getattr(old, "encoding", None) or "utf-8",
                                errors=getattr(old, "errors", None) or "strict",
                                line_buffering=bool(getattr(old, "line_buffering", False)))
        os.dup2(2, 1)
    except (OSError, ValueError, AttributeError):
        return
    _fd = fd
    sys.stdout = _Stdout(real)


def _reopen_closed() -> set[int]:
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        new = os.open(os.devnull, os.O_RDWR)
        if new != fd:
            os.dup2(new, fd)
            os.close(new)
    if 0 in closed:
        sys.stdin = open(os.devnull)
    return closed
