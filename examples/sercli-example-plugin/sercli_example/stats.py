"""Command `sercli example-stats MANIFEST...`: counts per emotion, source and speaker."""


import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer


def example_stats(
    manifests: Annotated[list[Path], typer.Argument(help="JSONL records (manifests, features...).")],
    by: Annotated[str, typer.Option("--by", help="Comma-separated fields to count.")] = "emotion,source,speaker",
) -> None:
    """Count records per emotion, source and speaker (example plugin command)."""
    from sercli.api import SercliError, info

    fields = [f.strip() for f in by.split(",") if f.strip()]
    counts = {f: Counter() for f in fields}
    total = 0
    for manifest in manifests:
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SercliError(f"{manifest}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise SercliError(f"{manifest}, line {number}: not valid JSON") from None
            total += 1
            for f in fields:
                counts[f][str(rec.get(f, "-"))] += 1
    info(f"{total} records")
    for f in fields:
        info(f"{f}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts[f].items())))
