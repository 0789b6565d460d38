"""The sercli command line: wiring, and the one error boundary (``main``).

Each command lives in sercli/commands/. Exit codes are listed in ``main``'s docstring.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from typing import Annotated

from sercli.core import fastexit

if fastexit.started_as_cli():  # a Ctrl-C while the rest imports is an interrupt, not a traceback
    fastexit.install_signal_handlers()
try:
    import typer
    import typer.core

    from sercli.core import plugins
    from sercli.commands import (
        degrade,
        eval_cmd,
        export,
        extract,
        filter as filter_cmd,
        gen_text,
        plugins_cmd,
        predict,
        prepare,
        synthesize,
        track,
        train,
    )
    from sercli.core.errors import SercliError
    from sercli.core.options import guard_outputs
    from sercli.core.numbers import checked
except KeyboardInterrupt as _exc:
    if not isinstance(_exc, fastexit.Interrupted):
        raise
    fastexit.interrupted_at_start(_exc)

_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "path": "PATH",
               "file": "FILE", "directory": "DIR"}


def _readable_types() -> None:
    """Typer 0.2x shows types as ``<list[str]>`` and ``<bool>`` (even for flags): show TEXT,
    INTEGER, [a|b], a repeatable option's element type, and nothing for a flag (older
    Typer versions have no ``display_type`` and print Click's own names)."""
    base = getattr(typer.core, "_TyperParameter", None)
    original = getattr(base, "display_type", None)
    if original is None or getattr(original, "sercli", False):
        return

    def display_type(self, ctx):
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        label = str(original(self, ctx)).strip("<>")
        while label.startswith("list[") and label.endswith("]"):
            label = label[5:-1]
        label = label.removesuffix(" range")
        if "|" in label:
            return f"[{label}]"
        return _TYPE_WORDS.get(label, label.upper())

    display_type.sercli = True
    base.display_type = display_type


_readable_types()


class _Commands(typer.core.TyperGroup):
    """Built-in commands, then the commands plugins registered (``register_commands``).
    Plugins load only when a name is not a built-in's or the command list is shown, so a
    built-in command never pays for them."""

    def list_commands(self, ctx) -> list[str]:
        builtin = super().list_commands(ctx)
        return builtin + sorted(n for n in _plugin_commands() if n not in self.commands)

    def get_command(self, ctx, name: str):
        return super().get_command(ctx, name) or _plugin_commands().get(name)


_plugin_cache: dict | None = None


def _plugin_commands() -> dict:
    """name -> Click command for each plugin command; one that cannot be built is one warning."""
    global _plugin_cache
    if _plugin_cache is None:
        from sercli.core import plugins

        _plugin_cache = {}
        for name, obj in plugins.commands().items():
            try:
                if isinstance(obj, typer.Typer):
                    command = typer.main.get_group(obj)
                    command.name = name
                else:
                    single = typer.Typer()
                    single.command(name)(obj)
                    command = typer.main.get_command(single)
            except Exception as exc:
                owner = plugins.registry().classes["command"][name][1]
                _say(f"Warning: plugin {owner!r} command {name!r} cannot be used: {type(exc).__name__}: {exc}")
                continue
            _plugin_cache[name] = command
    return _plugin_cache


app = typer.Typer(
    name="sercli",
    cls=_Commands,
    help="Speech emotion recognition with synthetic emotional speech.\n\n"
    "Pipeline: gen-text | synthesize | extract, then train and eval. "
    "Records are JSON Lines on stdout; logs and progress go to stderr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done, 1 error, 2 usage error, 130/143/129 interrupted by "
    "SIGINT/SIGTERM/SIGHUP (re-run the same command to resume), 141 stdout closed by its reader.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        def of(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return "not installed"

        print(f"sercli {of('sercli')} (torch {of('torch')}, transformers {of('transformers')}, "
              f"python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also SERCLI_DEBUG=1); anywhere on the line.")
    ] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only warnings and errors on stderr: no info lines, tables or progress bars "
                              "(also SERCLI_QUIET=1); anywhere on the line.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the versions of sercli, torch and transformers, then exit.")] = False,
) -> None:
    if debug:
        os.environ["SERCLI_DEBUG"] = "1"
    if quiet:
        os.environ["SERCLI_QUIET"] = "1"


def _help(fn) -> str:
    """A command's docstring for --help: each prose paragraph on one line (rich wraps it to
    the terminal), while a paragraph with indented lines (Examples:) keeps its lines."""
    import inspect

    import re

    paragraphs = inspect.cleandoc(fn.__doc__ or "").split("\n\n")
    indented = [any(line.startswith(" ") for line in p.splitlines()) for p in paragraphs]
    paragraphs = [p if ind else " ".join(p.split()) for p, ind in zip(paragraphs, indented)]
    if len(paragraphs) > 1 and indented[1] and not indented[0]:
        # Typer dedents the text after the first paragraph as a whole: give it a prose line
        # first (the first paragraph's later sentences), so that the examples keep their indent
        head, *rest = re.split(r"(?<=[.:;])\s+(?=[A-Z])", paragraphs[0], maxsplit=1)
        paragraphs[:1] = [head, *rest]
    return "\n\n".join(paragraphs)


for _name, _fn, _extra in (
    ("gen-text", gen_text.gen_text, {}),
    ("synthesize", synthesize.synthesize, {}),
    ("extract", extract.extract, {}),
    ("filter", filter_cmd.filter_records, {}),
    ("degrade", degrade.degrade, {}),
    ("train", train.train, {}),
    ("eval", eval_cmd.evaluate, {}),
    ("predict", predict.predict, {}),
    ("prepare", prepare.prepare, {"cls": prepare.PrepareCommand}),
    ("plugins", plugins_cmd.plugins, {}),
    ("export", export.export, {}),
    ("import", export.import_, {}),
    ("track", track.track, {}),
):
    app.command(_name, help=_help(_fn), **_extra)(checked(_fn))
plugins.BUILTIN_COMMANDS.update(c.name for c in app.registered_commands)
# options grouped in --help (a long command's panels: {panel: (parameter names)})
HELP_PANELS = {"train": train.HELP_PANELS}


def _panels(command) -> None:
    """Set each option's panel, and list the options panel by panel (in the order given)."""
    for name, panels in HELP_PANELS.items():
        sub = getattr(command, "commands", {}).get(name)
        if sub is None:
            continue
        order = list(panels)
        for param in sub.params:
            panel = next((p for p, names in panels.items() if param.name in names), None)
            if panel is not None:
                param.rich_help_panel = panel
        # arguments first (their order is their meaning), then the panels, then the rest
        sub.params.sort(key=lambda p: (getattr(p, "param_type_name", "") != "argument",
                                       order.index(p.rich_help_panel) if getattr(p, "rich_help_panel", None) in order
                                       else len(order)))

# sercli's own flags, accepted anywhere on the command line (before a lone `--`)
GLOBAL_FLAGS = ("--debug", "--quiet", "-q")


def _hoist(args: list[str]) -> list[str]:
    """``sercli train X -q`` as ``sercli -q train X``: the global flags moved to the front."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    return flags + [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]


def main() -> None:
    """Entry point: the one error boundary. Exit codes (also in the --help epilog):

    0 done; 1 an error (one line on stderr, the traceback with --debug); 2 a usage error;
    130, 143, 129: interrupted by SIGINT (Ctrl-C), SIGTERM or SIGHUP (128 + the signal
    number), after "Interrupted" on stderr; records written by then are whole, and the same
    command resumes; 141 (128 + SIGPIPE): the reader of stdout went away (``... | head -1``),
    which ends the command quietly, as it ends ``cat`` or ``yes``.
    """
    from sercli.core import stdio

    fastexit.install_signal_handlers()
    stdio.take_over()  # stdout holds records only, whatever a plugin or library prints
    args = _hoist(sys.argv[1:])
    debug = "--debug" in args or bool(os.environ.get("SERCLI_DEBUG"))
    code = _run(args, debug)
    try:
        sys.stdout.flush()  # here, not at exit, where a failure is "Exception ignored" noise
    except (OSError, ValueError) as exc:
        if _pipe_error(exc) and _quiet_closed_streams():
            code = code or 128 + 13
        else:
            _to_devnull(stdio.stdout_fd())
            if not code:
                _say(f"Error: cannot write to stdout: {exc}")
                code = 1
    fastexit.exiting()  # the command is over: a signal now (threads still joining) ends it at once
    sys.exit(code)


def _run(args: list[str], debug: bool) -> int:
    from sercli.core.records import forget_inputs

    forget_inputs()
    try:
        command = typer.main.get_command(app)
        _panels(command)
        guard_outputs(command)  # `-o n_mels=40` (meant -O) is refused, for every command (sercli.core.options)
        with command.make_context("sercli", list(args)) as ctx:
            command.invoke(ctx)
        if fastexit.first_signal():  # a signal that some code swallowed: the run was not whole
            raise fastexit.Interrupted(fastexit.first_signal())
        return 0
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP (fastexit.Interrupted), or raised by code
        fastexit.exiting()
        signum = fastexit.first_signal() or getattr(exc, "signum", signal.SIGINT)
        if debug:
            traceback.print_exc()
        _say("Interrupted" if signum == signal.SIGINT else f"Interrupted by {signal.Signals(signum).name}")
        return 128 + signum
    except SercliError as exc:
        if debug:
            raise
        _say(f"Error: {exc}")
        return 1
    except SystemExit as exc:  # sys.exit() in a plugin or library: never a silent end
        if _pipe_error(exc.__context__):  # rich ends its output this way on a broken pipe
            _quiet_closed_streams()
            return 128 + 13
        if debug:
            traceback.print_exc()
        code = exc.code if isinstance(exc.code, int) and exc.code else 1
        _say(f"Error: something called sys.exit({exc.code!r}) before the command finished"
             + ("" if debug else " (run with --debug for the traceback)"))
        return code
    except Exception as exc:  # Click usage errors, bad parameters, unexpected failures
        if _pipe_error(exc) and _quiet_closed_streams():
            return 128 + 13  # the reader of stdout (or stderr) went away: end quietly
        code = _click_exit(exc)
        if code is not None:
            return code
        if debug:
            raise
        if isinstance(exc, OSError) and exc.strerror:  # a path that is a file, not a folder...
            where = f"{exc.filename}: " if exc.filename is not None else ""
            _say(f"Error: {where}{exc.strerror}")
        else:
            _say(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


def _say(line: str) -> None:
    """One line on stderr, even when stderr is gone."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _pipe_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def _quiet_closed_streams() -> bool:
    """If stdout or stderr is a pipe whose reader has gone, point it at /dev/null (so that
    nothing left in a buffer can fail again at exit) and say True. False when both still
    have a reader: the broken pipe was somebody else's (a socket, a subprocess)."""
    from sercli.core import stdio

    closed = False
    for stream, fd in ((sys.stdout, stdio.stdout_fd()), (sys.stderr, 2)):
        if not _reader_gone(fd):
            continue
        closed = True
        _to_devnull(fd)
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    return closed


def _to_devnull(fd: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _reader_gone(fd: int) -> bool:
    """Whether ``fd`` is the write end of a pipe nobody reads any more."""
    import select

    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or fd closed
        return False


def _click_exit(exc: Exception) -> int | None:
    """Typer vendors its own Click: recognise its exceptions by shape, not by class."""
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # UsageError, BadParameter, ...
        try:
            exc.show(file=sys.stderr)
        except OSError:  # stderr is gone: the exit code still tells
            pass
        return exc.exit_code
    if type(exc).__name__ == "Abort":
        _say("Aborted")
        return 1
    if hasattr(exc, "exit_code") and type(exc).__name__ == "Exit":
        return exc.exit_code
    return None
