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
Dedupe = Annotated[
    bool,
    typer.Option("--dedupe", help="Keep the first record of each id given more than once (and say how many were "
                 "dropped) instead of refusing the input; one id with two emotions is refused all the same."),
]
LabelSet = Annotated[
    Optional[str],
    typer.Option("--labels", help="The label set, comma-separated (e.g. angry,happy,amusement): any emotion outside it "
                 "is an error (default: the canonical emotions; Anger, happiness and the corpora's own codes are "
                 "normalised to them)."),
]
