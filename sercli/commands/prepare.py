"""`sercli prepare CORPUS PATH`: a corpus in its original layout -> a JSONL manifest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core

from sercli.core.errors import SercliError
from sercli.core.options import Output, PluginOptions

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


class PrepareCommand(typer.core.TyperCommand):
    """`prepare --help` names the corpus readers installed, asked of the registry only then."""

    def format_help(self, ctx, formatter) -> None:
        from sercli.core import plugins

        for param in self.params:
            if param.name == "corpus":
                param.help = f"Corpus: {', '.join(plugins.names('corpus')) or '(none installed)'}."
        super().format_help(ctx, formatter)


def prepare(
    corpus: Annotated[
        str,
        typer.Argument(help="Corpus reader (`sercli prepare --help` lists those installed)."),
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

    Examples:
      sercli prepare emodb /data/emodb/wav -o emodb.jsonl
      sercli prepare iemocap /data/IEMOCAP --map none --classes all
      sercli prepare generic labels.csv --map calm=neutral -o mine.jsonl
    """
    from sercli.core import manifest
    from sercli.core import plugins
    from sercli.contract.common import parse_option_pairs
    from sercli.core.labels import LabelRules

    reader = plugins.create("corpus", corpus, parse_option_pairs(option))
    rules = LabelRules.from_cli(classes, maps, reader.default_classes, reader.default_map)
    selected = manifest.prepare(reader, corpus, path, rules, output)
    _print_summary(selected, rules, output or "stdout")
    if selected.failed:
        raise SercliError(
            f"{len(selected.failed)} audio files could not be read (see warnings above); "
            "the manifest holds the others"
        )


def _print_summary(manifest, rules, destination: str) -> None:
    """Counts per label, speaker and session as rich tables on stderr."""
    if os.environ.get("SERCLI_QUIET"):
        return
    from collections import Counter

    from rich.columns import Columns
    from rich.table import Table

    from sercli.core.log import console, info

    written = manifest.written
    minutes = sum(r["duration"] for r in written) / 60

    def table(title: str, key: str, limit: int = 25) -> Table:
        counts = Counter(str(r.get(key, "-")) for r in written)
        t = Table(title=f"{title} ({len(counts)})", title_justify="left")
        t.add_column(title)
        t.add_column("files", justify="right")
        for name, n in sorted(counts.items())[:limit]:
            t.add_row(name, str(n))
        if len(counts) > limit:
            t.add_row(f"... {len(counts) - limit} more", "")
        return t

    console.print(Columns([table("label", "emotion"), table("speaker", "speaker"), table("session", "session")]))
    if manifest.dropped:
        kept = ",".join(rules.classes or ())
        info(
            f"Left out by --classes {kept}: "
            + ", ".join(f"{k} {n}" for k, n in sorted(manifest.dropped.items()))
        )
    info(
        f"Wrote {len(written)} records ({minutes:.1f} minutes) to {destination}"
        + (f"; {len(manifest.missing)} missing on disk" if manifest.missing else "")
        + (f"; {len(manifest.failed)} unreadable" if manifest.failed else "")
    )
