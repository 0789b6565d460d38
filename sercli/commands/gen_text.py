"""`sercli gen-text`: an LLM backend writes emotion-congruent sentences."""

from __future__ import annotations

from typing import Annotated

import typer

from sercli import plugins as pl
from sercli import textgen
from sercli.base import parse_option_pairs
from sercli.errors import SercliError
from sercli.options import Output, PluginOptions, Seed


def gen_text(
    emotions: Annotated[
        str, typer.Option("--emotions", "-e", help="Comma-separated emotions.")
    ] = "angry,happy,neutral,sad",
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Sentences per emotion.")] = 50,
    backend: Annotated[str, typer.Option("--backend", "-b", help="LLM backend plugin.")] = "template",
    option: PluginOptions = None,
    output: Output = None,
    seed: Seed = 0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what the run would cost, then stop.")
    ] = False,
) -> None:
    """Write N sentences per emotion as records {id, emotion, text, source, provenance}.

    With -o FILE the run is resumable: sentences already in FILE are kept and only the
    missing ones are requested (append-only, so paid results are never lost).
    """
    wanted = [e.strip() for e in emotions.split(",") if e.strip()]
    if not wanted:
        raise SercliError("--emotions is empty")
    llm = pl.create("llm", backend, parse_option_pairs(option))
    textgen.run(llm, backend, wanted, n, output, seed, dry_run=dry_run)
