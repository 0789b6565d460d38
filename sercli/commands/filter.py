"""`sercli filter`: quality gates keep or drop synthetic utterances (between synthesize and extract)."""

from __future__ import annotations

from typing import Annotated

import typer

from sercli.evaluation import filtering
from sercli.core import plugins as pl
from sercli.contract.common import parse_option_pairs
from sercli.core.inputs import LabelCheck, read_inputs
from sercli.core.options import Dedupe, Device, Input, Output, PluginOptions


def filter_records(
    input: Input = "-",
    gate: Annotated[
        list[str], typer.Option("--gate", "-g", help="Quality gate plugin (repeatable: applied in order).")
    ] = ...,  # type: ignore[assignment]
    dropped: Annotated[
        str, typer.Option("--dropped", help="File for the dropped records (JSONL, each with filter_reason).")
    ] = ...,  # type: ignore[assignment]
    option: PluginOptions = None,
    output: Output = None,
    device: Device = "cpu",
    dedupe: Dedupe = False,
) -> None:
    """Keep the records every gate accepts (to -o or stdout); write the others, each with its
    filter_reason, to --dropped. Resumable: records already in either file are not judged again.

    Options: -O key=value with one gate, -O gate.key=value with several (`sercli plugins
    GATE` lists a gate's options).

    Examples:
      sercli filter audio.jsonl -g asr -O max_wer=0.3 --dropped bad.jsonl
      sercli filter audio.jsonl -g asr -g emotion -O emotion.run=runs/real
    """
    names = list(dict.fromkeys(gate))
    options = filtering.gate_options(names, parse_option_pairs(option))
    gates = {name: pl.create("gate", name, options[name]) for name in names}
    records = read_inputs([([input], ("id",))], dedupe, LabelCheck(strict=False))[0]
    filtering.run(records, gates, output, dropped, device)
