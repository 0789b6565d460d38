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


# -- outputs: a value that reads as a plugin option is refused (`-o n_mels=40` meant `-O`) ------

# Every option that names what a command writes (a file or a folder), whichever command has it:
# a plugin's command too. `guard_outputs` checks them all before the command runs.
OUTPUT_OPTIONS = ("--output", "--out", "--store", "--audio-dir", "--dropped", "--html", "--plot")


def check_output_path(option: str, value) -> None:
    """SercliError when ``value``, given to the output ``option``, reads as ``KEY=VALUE`` (a
    bare name, no folder): almost always an option meant for ``-O``, not a file to write."""
    import re

    from sercli.core.errors import SercliError

    text = str(value)
    if "/" not in text and "\\" not in text and re.match(r"[A-Za-z_][\w.-]*=", text):
        raise SercliError(f"{option} {text}: looks like a plugin option KEY=VALUE, not a path to write; "
                          f"pass plugin options with -O {text} (or write ./{text} if that is the name you want)")


def guard_outputs(command) -> None:
    """Have every output option (OUTPUT_OPTIONS) of the click ``command`` and its subcommands
    run `check_output_path` on its value while the command line is parsed, before any work."""
    for param in getattr(command, "params", []):
        names = [o for o in getattr(param, "opts", []) if o in OUTPUT_OPTIONS]
        if names and getattr(param, "param_type_name", "") == "option" and not getattr(param, "_outputs_guarded", 0):
            param.callback = _checking(param.callback, names[0])
            param._outputs_guarded = 1
    for sub in (getattr(command, "commands", None) or {}).values():
        guard_outputs(sub)


def _checking(callback, option: str):
    def check(ctx, param, value):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None:
                check_output_path(option, v)
        return callback(ctx, param, value) if callback is not None else value

    return check
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
