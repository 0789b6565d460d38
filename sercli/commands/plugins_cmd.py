"""`sercli plugins`: what is installed and what each plugin registered."""

from __future__ import annotations

import json

from sercli import plugins as pl
from sercli.log import console
from sercli.options import JsonFlag


def plugins(as_json: JsonFlag = False) -> None:
    """List installed plugins, their versions and what each registered."""
    reg = pl.registry()
    rows = []
    for info in sorted(reg.infos.values(), key=lambda i: i.name):
        registered = {}
        for family, names in info.registered.items():
            registered[family] = [
                {"name": n, "description": getattr(reg.classes[family][n][0], "description", "")}
                for n in names
            ]
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "module": info.module,
                "registered": registered,
                "error": info.error,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="sercli plugins")
    for col in ("plugin", "version", "family", "registered"):
        table.add_column(col)
    for row in rows:
        if row["error"]:
            table.add_row(row["name"], row["version"], "-", f"[red]failed: {row['error']}[/red]")
        for family, items in row["registered"].items():
            table.add_row(row["name"], row["version"], family, ", ".join(i["name"] for i in items))
    console.print(table)
