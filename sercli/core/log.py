"""Everything human-readable goes to stderr; stdout carries only records."""

from __future__ import annotations

import os

from rich.console import Console

console = Console(stderr=True, highlight=False)


def info(msg: str) -> None:
    if not quiet():
        console.print(msg, markup=False, soft_wrap=True)


def quiet() -> bool:
    return bool(os.environ.get("SERCLI_QUIET"))


def show(renderable, console_=None) -> None:
    """A table or other rich renderable on stderr, unless -q (warnings and errors stay)."""
    if not quiet():
        (console_ or console).print(renderable)


def warn(msg: str) -> None:
    console.print(f"Warning: {msg}", markup=False, style="yellow", soft_wrap=True)


def progress(**kwargs):
    """A rich progress bar on stderr (hidden with --quiet or when stderr is not a terminal
    and SERCLI_PROGRESS is unset)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=bool(os.environ.get("SERCLI_QUIET")),
        **kwargs,
    )
