"""`sercli plugins [NAME]`: what is installed, what each plugin registered (with its -O
options), and what went wrong."""

from __future__ import annotations

import difflib
import json
import types
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import typer

from sercli.core import plugins as pl
from sercli.core.errors import SercliError
from sercli.core.log import console
from sercli.core.options import JsonFlag


def plugins(
    name: Annotated[Optional[str], typer.Argument(
        help="A plugin (entry-point name) or a registered name (a backbone, head, strategy...): "
             "show its classes' -O options.", show_default=False)] = None,
    as_json: JsonFlag = False,
) -> None:
    """List installed plugins, their versions and what each registered; with NAME, the
    options (-O KEY=VALUE) each of its classes takes: type, default, allowed values.

    The listing goes to stderr; --json prints it on stdout (each option with its type,
    default, required, allowed values, range and description).

    Examples:
      sercli plugins
      sercli plugins linear            # the options of the linear head
      sercli plugins hf --json         # every class the hf plugin registers
    """
    reg = pl.registry()
    if name is not None:
        found = _find(reg, name)
        if as_json:
            print(json.dumps(found, indent=2, default=str))
        else:
            _print_options(found)
        return
    # An entry point ignored because its name was taken comes just before the plugin that
    # has the name, so that {row["name"]: row} maps each name to the plugin in use.
    infos = [(i, 0) for i in reg.ignored] + [(i, 1) for i in reg.infos.values()]
    rows = []
    for info, _ in sorted(infos, key=lambda pair: (pair[0].name, pair[1])):
        registered = {}
        for family, names in info.registered.items():
            registered[family] = [_entry(family, n, reg.classes[family][n][0]) for n in names]
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
        print(json.dumps(rows, indent=2, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="sercli plugins", caption="`sercli plugins NAME` shows a class's -O options")
    for col in ("plugin", "version", "family", "registered"):
        table.add_column(col)
    for row in rows:
        for family, items in row["registered"].items():
            table.add_row(row["name"], row["version"], family, ", ".join(i["name"] for i in items))
        if row["error"]:
            table.add_row(row["name"], row["version"], "-", f"[red]{escape(row['error'])}[/red]")
    console.print(table)


def _find(reg, name: str) -> list[dict]:
    """Every class registered by the plugin ``name`` and every class registered as ``name``
    (in any family; a prefix such as ``hf:`` matches ``hf:facebook/wav2vec2-base``)."""
    found: dict[tuple[str, str], dict] = {}
    info = reg.infos.get(name)
    for family, names in (info.registered.items() if info else ()):
        for n in names:
            found[family, n] = _entry(family, n, reg.classes[family][n][0], info.name)
    for family in pl.FAMILIES:
        hit = pl._lookup(family, name)
        if hit is not None:
            key = name if name in reg.classes[family] else next(
                k for k, v in reg.classes[family].items() if v == hit)
            found.setdefault((family, key), _entry(family, key, hit[0], hit[1]))
    if not found and info is not None:
        raise SercliError(f"plugin {name!r} registered nothing" + (f": {info.error}" if info.error else ""))
    if not found:
        known = sorted(set(reg.infos) | {n for table in reg.classes.values() for n in table})
        hint = difflib.get_close_matches(name, known, n=1)
        raise SercliError(f"No plugin or registered class named {name!r}."
                          + (f" Did you mean {hint[0]!r}?" if hint else "")
                          + " `sercli plugins` lists them.")
    return list(found.values())


def _entry(family: str, name: str, cls, plugin: str | None = None) -> dict:
    out: dict[str, Any] = {"name": name}
    if plugin is not None:
        out = {"family": family, **out, "plugin": plugin}
    out["description"] = _description(cls)
    options = describe_options(cls) if family != "command" else None
    if options or (plugin is not None and options is not None):  # the listing: only where there are some
        out["options"] = options
    return out


def describe_options(cls) -> dict[str, dict]:
    """name -> {type, default, required, allowed, range, description} of ``cls.Options``."""
    fields = getattr(getattr(cls, "Options", None), "model_fields", None) or {}
    out = {}
    for key, f in fields.items():
        required = f.is_required()
        out[key] = {
            "type": type_name(f.annotation),
            "default": None if required else f.get_default(call_default_factory=True),
            "required": required,
            "allowed": _choices(f.annotation),
            "range": _range(f.metadata),
            "description": f.description or "",
        }
    return out


def type_name(annotation) -> str:
    """A readable type: ``int``, ``list of str``, ``mean | mean+std``, ``int or none``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "none"
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        text = " or ".join(type_name(a) for a in kept)
        return f"{text} or none" if len(kept) < len(args) else text
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}" if len(args) == 2 else "mapping"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _choices(annotation) -> list | None:
    """The values a Literal (or an optional Literal) allows, else None."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if get_origin(arg) is Literal:
                return list(get_args(arg)) + ([None] if type(None) in get_args(annotation) else [])
    return None


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
           ("min_length", "length >="), ("max_length", "length <="))


def _range(metadata) -> str | None:
    """pydantic's constraints (Field(ge=1, le=64)) as ``>= 1, <= 64``."""
    parts = [f"{sign} {getattr(m, attr)}" for m in metadata for attr, sign in _BOUNDS
             if getattr(m, attr, None) is not None]
    return ", ".join(parts) or None


def _print_options(found: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    for item in found:
        head = f"[bold]{escape(item['name'])}[/bold] ({pl.FAMILY_WORDS[item['family']]}, plugin {escape(item['plugin'])})"
        console.print(head + (f": {escape(item['description'])}" if item["description"] else ""), soft_wrap=True)
        options = item.get("options")
        if options is None:
            console.print("  a command: `sercli {0} --help` shows its options".format(escape(item["name"])))
        elif not options:
            console.print("  no options")
        else:
            table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
            table.add_column("key", no_wrap=True, style="bold")
            table.add_column("what", overflow="fold")
            for key, o in options.items():
                default = "required" if o["required"] else f"default {_show(o['default'])}"
                what = ", ".join(filter(None, [o["type"], o["range"], default]))
                table.add_row(escape(key), escape(what + (f"\n{o['description']}" if o["description"] else "")))
            console.print(table)
        console.print()


def _show(value) -> str:
    if isinstance(value, str):
        return value if value.strip() and value == value.strip() else json.dumps(value)
    return json.dumps(value, default=str)


def _description(obj) -> str:
    """A class's ``description``; a command's first docstring line (a Typer app: its help)."""
    text = getattr(obj, "description", None)
    if not isinstance(text, str):
        text = getattr(getattr(obj, "info", None), "help", None) or getattr(obj, "__doc__", None) or ""
        text = text.strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""
    return text
