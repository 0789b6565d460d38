"""`sercli prepare CORPUS PATH`: a corpus in its original layout -> a JSONL manifest."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.errors import SercliError
from sercli.options import Output, PluginOptions

Classes = Annotated[
    Optional[str],
    typer.Option(
        "--classes",
        help="Canonical labels to keep, comma-separated, or 'all' "
        "(default: the corpus's usual set; iemocap: angry,happy,neutral,sad).",
    ),
]
Maps = Annotated[
    Optional[list[str]],
    typer.Option(
        "--map",
        help="Merge labels FROM=TO (raw or canonical FROM), comma-separated or repeated, or 'none' "
        "(replaces the corpus default; iemocap: excited=happy).",
    ),
]


def prepare(
    corpus: Annotated[
        str,
        typer.Argument(help="Corpus: iemocap, msp-podcast, ravdess, crema-d, emodb, tess, generic."),
    ],
    path: Annotated[
        Path,
        typer.Argument(help="The corpus folder as distributed (generic: a CSV file or a folder per label)."),
    ],
    output: Output = None,
    classes: Classes = None,
    maps: Maps = None,
    option: PluginOptions = None,
) -> None:
    """Write a manifest (id, audio, emotion, speaker, session, duration...) for a corpus.

    Counts per label, speaker and session go to stderr. Files the corpus metadata lists but
    that are missing on disk are reported and skipped.
    """
    from sercli import plugins
    from sercli.base import parse_option_pairs
    from sercli.fsutil import atomic_write_text
    from sercli.records import RecordWriter, is_stdout, open_writer, refuse_input, remember_input
    from sercli import manifest
    from sercli.labels import LabelRules

    reader = plugins.create("corpus", corpus, parse_option_pairs(option))
    root = path.expanduser().resolve()
    if not root.exists():
        raise SercliError(f"{path}: no such file or folder")
    remember_input(root)  # -o must not replace the corpus's own file (generic: the CSV)
    refuse_input(output)
    # a corpus reader that changes the working folder moves nothing
    target = None if is_stdout(output) else os.path.abspath(output)
    rules = LabelRules.from_cli(classes, maps, reader.default_classes, reader.default_map)
    selected = manifest.select(reader, root, rules)  # errors here leave no output file behind
    if not selected.records:
        raise SercliError(f"no records left for {corpus} at {path} (check --classes and the warnings above)")
    if is_stdout(output):
        with open_writer(output) as writer:
            manifest.write(selected, writer)
    else:
        # whole or not at all: a killed run leaves no half manifest, and of two runs writing
        # the same file, one complete manifest wins instead of their lines interleaving
        buffer = io.StringIO()
        manifest.write(selected, RecordWriter(buffer))
        atomic_write_text(target, buffer.getvalue())
    manifest.print_summary(selected, rules, output or "stdout")
    if selected.failed:
        raise SercliError(
            f"{len(selected.failed)} audio files could not be read (see warnings above); "
            "the manifest holds the others"
        )
