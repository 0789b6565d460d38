"""`sercli gen-text`: an LLM backend writes emotion-congruent sentences."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sercli.core import plugins as pl
from sercli.text import textgen
from sercli.contract.common import parse_option_pairs
from sercli.core.errors import SercliError
from sercli.core.options import Output, PluginOptions, Seed


def gen_text(
    emotions: Annotated[
        str, typer.Option("--emotions", "-e", help="Comma-separated emotions.")
    ] = "angry,happy,neutral,sad",
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Sentences per emotion.")] = 50,
    backend: Annotated[str, typer.Option("--backend", "-b", help="LLM backend plugin.")] = "template",
    option: PluginOptions = None,
    output: Output = None,
    seed: Seed = 0,
    language: Annotated[
        Optional[str], typer.Option("--language", "-l", help="Language of the sentences (en, de, it...): "
                                    "sets the backend's 'language' option.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what the run would cost, then stop.")
    ] = False,
) -> None:
    """Write N sentences per emotion as records {id, emotion, text, language, source, provenance}.

    With -o FILE the run is resumable: sentences already in FILE are kept and only the
    missing ones are requested (append-only, so paid results are never lost).

    Examples:
      sercli gen-text -e angry,happy,neutral,sad -n 100 -o texts.jsonl
      sercli gen-text -b openai -O model=gpt-4o-mini -n 20 --dry-run
      sercli gen-text -l de -n 50 | sercli synthesize - -d synth/
    """
    wanted = [e.strip() for e in emotions.split(",") if e.strip()]
    if not wanted:
        raise SercliError("--emotions is empty")
    options = parse_option_pairs(option)
    if language is not None:
        fields = getattr(pl.get_class("llm", backend), "Options", None)
        if "language" not in getattr(fields, "model_fields", {}):
            raise SercliError(f"--language: LLM backend {backend!r} has no 'language' option; it writes one language only")
        if options.get("language", language) != language:
            raise SercliError(f"--language {language} and -O language={options['language']} disagree; give one")
        options["language"] = language
    llm = pl.create("llm", backend, options)
    textgen.run(llm, backend, wanted, n, output, seed, dry_run=dry_run)
