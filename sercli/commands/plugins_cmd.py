"""`sercli plugins`: what is installed, what each plugin registered, and what went wrong."""

from __future__ import annotations

import json

from sercli import plugins as pl
from sercli.log import console
from sercli.options import JsonFlag


def plugins(as_json: JsonFlag = False) -> None:
    """List installed plugins, their versions and what each registered."""
    reg = pl.registry()
    # An entry point ignored because its name was taken comes just before the plugin that
    # has the name, so that {row["name"]: row} maps each name to the plugin in use.
    infos = [(i, 0) for i in reg.ignored] + [(i, 1) for i in reg.infos.values()]
    rows = []
    for info, _ in sorted(infos, key=lambda pair: (pair[0].name, pair[1])):
        registered = {}
        for family, names in info.registered.items():
            registered[family] = [
                {"name": n, "description": _description(reg.classes[family][n][0])}
                for n in names
            ]
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "module": info.module,
                "distribution": info.distribution,
                "registered": registered,
                "error": info.error,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="sercli plugins")
    for col in ("plugin", "version", "family", "registered"):
        table.add_column(col)
    for row in rows:
        for family, items in row["registered"].items():
            table.add_row(row["name"], row["version"], family, ", ".join(i["name"] for i in items))
        if row["error"]:
            table.add_row(row["name"], row["version"], "-", f"[red]{escape(row['error'])}[/red]")
    console.print(table)


def _description(obj) -> str:
    """A class's ``description``; a command's first docstring line (a Typer app: its help)."""
    text = getattr(obj, "description", None)
    if not isinstance(text, str):
        text = getattr(getattr(obj, "info", None), "help", None) or getattr(obj, "__doc__", None) or ""
        text = text.strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""
    return text
