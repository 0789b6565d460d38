"""Options shared by several commands, declared once so they read the same everywhere."""

from pathlib import Path
from typing import Annotated, Optional

import typer

Input = Annotated[str, typer.Argument(help="Input records (JSONL path, or - for stdin).")]
Inputs = Annotated[list[str], typer.Argument(help="Input records (JSONL paths, or - for stdin).")]
Output = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Output records (JSONL path; default: stdout)."),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
PluginOptions = Annotated[
    Optional[list[str]],
    typer.Option("--option", "-O", help="Plugin option KEY=VALUE (repeatable); `sercli plugins NAME` lists the options of the plugin NAME."),
]
OutDir = Annotated[Path, typer.Option("--out", help="Output folder.")]
Emotions = Annotated[
    str,
    typer.Option("--emotions", "-e", help="Comma-separated emotions."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
