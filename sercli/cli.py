"""The sercli command line: wiring only. Each command lives in sercli/commands/."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from sercli.commands import (
    eval_cmd,
    extract,
    gen_text,
    plugins_cmd,
    predict,
    prepare,
    synthesize,
    train,
)
from sercli.errors import SercliError

app = typer.Typer(
    name="sercli",
    help="Speech emotion recognition with synthetic emotional speech.\n\n"
    "Pipeline: gen-text | synthesize | extract, then train and eval. "
    "Records are JSON Lines on stdout; logs and progress go to stderr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (also SERCLI_DEBUG=1).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Less output on stderr.")] = False,
) -> None:
    if debug:
        os.environ["SERCLI_DEBUG"] = "1"
    if quiet:
        os.environ["SERCLI_QUIET"] = "1"


app.command("gen-text")(gen_text.gen_text)
app.command("synthesize")(synthesize.synthesize)
app.command("extract")(extract.extract)
app.command("train")(train.train)
app.command("eval")(eval_cmd.evaluate)
app.command("predict")(predict.predict)
app.command("prepare")(prepare.prepare)
app.command("plugins")(plugins_cmd.plugins)


def main() -> None:
    """Entry point: the one error boundary."""
    debug_argv = "--debug" in sys.argv[1:]
    import sercli.fastexit  # noqa: F401  (exit in ms, not seconds, once torch is loaded)

    try:
        app(standalone_mode=False)
    except SercliError as exc:
        if debug_argv or os.environ.get("SERCLI_DEBUG"):
            raise
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # Click usage errors, bad parameters, unexpected failures
        code = _click_exit(exc)
        if code is not None:
            sys.exit(code)
        if debug_argv or os.environ.get("SERCLI_DEBUG"):
            raise
        print(f"Error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)


def _click_exit(exc: Exception) -> int | None:
    """Typer vendors its own Click: recognise its exceptions by shape, not by class."""
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # UsageError, BadParameter, ...
        exc.show(file=sys.stderr)
        return exc.exit_code
    if type(exc).__name__ == "Abort":
        print("Aborted", file=sys.stderr)
        return 1
    if hasattr(exc, "exit_code") and type(exc).__name__ == "Exit":
        return exc.exit_code
    return None
