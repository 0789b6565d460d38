"""How sercli exits: fast, and cleanly when a signal asks it to.

Importing this module makes the interpreter's exit fast. At exit, Python's final garbage
collections walk every object alive, and torch and transformers make hundreds of thousands
at import: 1-2 s for every command (or worker server) that loaded them. Freezing the objects
first (``gc.freeze`` as the last exit handler) skips that walk; reference counting still
closes files and runs destructors.

Signals. ``install_signal_handlers()`` (called by ``sercli.__main__`` and, for the ``sercli``
script, by ``sercli.cli`` before its imports; never at this module's import, because the
extraction fork server preloads it) turns SIGINT, SIGTERM and SIGHUP
into ``Interrupted``, a ``KeyboardInterrupt``: the command unwinds, ``finally`` blocks and
context managers close what is open (an output file ends after a whole record, worker pools
shut down), and the CLI prints "Interrupted" and exits with 128 + the signal number (130,
143, 129). A signal the parent set to be ignored (``nohup``, a background job) stays ignored.
Once the CLI is on its way out, ``exiting()`` makes any further signal end it at once.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal

atexit.register(gc.freeze)

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGINT, SIGTERM or SIGHUP arrives."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name


_first: int | None = None  # the signal that interrupted the command (a second one may follow)


def _raise(signum, frame) -> None:
    global _first
    if _first is None:
        _first = signum
    raise Interrupted(signum)


def first_signal() -> int | None:
    """The first signal that interrupted this process, if any: it decides the exit code even
    when a second one (a double Ctrl-C) interrupts the clean-up."""
    return _first


def started_as_cli() -> bool:
    """Whether this process is the ``sercli`` console script (``python -m sercli`` installs
    the handlers in ``sercli.__main__``), so that handlers may be installed at import."""
    import sys

    main = sys.modules.get("__main__")
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script in ("sercli", "sercli.exe") and getattr(main, "__file__", None) == sys.argv[0]


def interrupted_at_start(exc: Interrupted) -> None:
    """A signal arrived while sercli was still importing: nothing was written yet."""
    import sys

    try:
        print("Interrupted" if exc.signum == signal.SIGINT else f"Interrupted by {exc}",
              file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass
    os._exit(128 + exc.signum)


def _now(signum, frame) -> None:
    os._exit(128 + (_first or signum))


def install_signal_handlers() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (main thread only)."""
    import sys

    for sig in SIGNALS:
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, _raise)
    if getattr(sys.unraisablehook, "__name__", "") != "_unraisable":
        previous = sys.unraisablehook

        def _unraisable(unraisable) -> None:
            # An interrupt raised where Python ignores exceptions (a weakref callback, __del__,
            # an import lock's clean-up) would be lost and the command run on: deliver it again
            # a moment later (from a thread: now, it would land in the same place).
            if isinstance(unraisable.exc_value, Interrupted):
                import threading

                again = threading.Timer(0.01, os.kill, (os.getpid(), unraisable.exc_value.signum))
                again.daemon = True
                again.start()
                return
            previous(unraisable)

        sys.unraisablehook = _unraisable


def exiting() -> None:
    """The CLI is leaving after an interrupt: a second signal ends it now (no clean-up)."""
    for sig in SIGNALS:
        if signal.getsignal(sig) is _raise:
            signal.signal(sig, _now)


def is_signal(exc: BaseException) -> bool:
    """Whether ``exc`` is a real interrupt (a signal), which must end the command, rather than
    a KeyboardInterrupt some code raised itself (a plugin, say)."""
    if isinstance(exc, Interrupted):
        return True
    return isinstance(exc, KeyboardInterrupt) and signal.getsignal(signal.SIGINT) is not _raise


def saved_handlers() -> dict:
    """The handlers of SIGINT, SIGTERM and SIGHUP now, for ``restore_handlers``."""
    return {sig: signal.getsignal(sig) for sig in SIGNALS}


def restore_handlers(saved: dict) -> None:
    """Put back handlers that code (a plugin's import) may have replaced."""
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread
                return
