"""`sercli plugins [NAME]`: every built-in class's -O options as its pydantic Options model
declares them (name, readable type, default, allowed values, range, description)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sercli.core import plugins as pl
from sercli.commands.plugins_cmd import type_name


def _builtin_classes():
    reg = pl.registry()
    for family, table in reg.classes.items():
        if family == "command":
            continue
        for name, (cls, plugin) in table.items():
            if reg.infos[plugin].distribution == pl.BUILTIN_DIST:
                yield family, name, cls


def _check(model, key, value):
    """Validate one field alone (other fields may be required)."""
    return getattr(model.__pydantic_validator__.validate_assignment(model.model_construct(), key, value), key)


def _violations(rng: str):
    """Values just outside each bound of ``>= 1, <= 64``."""
    for part in rng.split(", "):
        op, value = part.rsplit(" ", 1)
        bound = float(value)
        yield {">=": bound - 1, ">": bound, "<=": bound + 1, "<": bound}[op]


def test_listing_matches_every_builtin_options_model(cli):
    rows = json.loads(cli("plugins", "--json", check=True).stdout)
    listed = {(fam, item["name"]): item for row in rows for fam, items in row["registered"].items() for item in items}
    classes = list(_builtin_classes())
    assert len(classes) > 20
    for family, name, cls in classes:
        options = listed[family, name].get("options", {})  # the listing leaves out an empty one
        fields = cls.Options.model_fields
        assert list(options) == list(fields), (family, name)
        for key, field in fields.items():
            o = options[key]
            where = f"{family} {name} -O {key}"
            assert o["required"] == field.is_required(), where
            assert o["description"] == (field.description or ""), where
            assert "<" not in o["type"] and "[" not in o["type"] and "typing" not in o["type"], (where, o["type"])
            if not field.is_required():
                assert o["default"] == json.loads(json.dumps(field.get_default(call_default_factory=True), default=str)), where
                _check(cls.Options, key, o["default"])  # the shown default is a valid value
            for value in o["allowed"] or []:  # each allowed value validates...
                assert _check(cls.Options, key, value) == value, where
            if o["allowed"]:  # ...and one not in the list does not
                with pytest.raises(ValidationError):
                    _check(cls.Options, key, "not-" + "-".join(map(str, o["allowed"])))
            bounded = any(getattr(m, a, None) is not None for m in field.metadata for a in ("ge", "gt", "le", "lt"))
            assert bool(o["range"]) == bounded, where
            for bad in _violations(o["range"]) if o["range"] and "length" not in o["range"] else ():
                with pytest.raises(ValidationError):
                    _check(cls.Options, key, bad)


def test_readable_type_names():
    from typing import Literal, Optional

    assert type_name(int) == "int"
    assert type_name(list[str]) == "list of str"
    assert type_name(Literal["mean", "mean+std"]) == "mean | mean+std"
    assert type_name(Optional[int]) == "int or none"
    assert type_name(float | None) == "float or none"
    assert type_name(dict[str, float]) == "mapping of str to float"


def test_plugins_name_by_class_and_by_plugin(cli):
    linear = json.loads(cli("plugins", "linear", "--json", check=True).stdout)
    assert [(i["family"], i["name"], i["plugin"]) for i in linear] == [("head", "linear", "heads")]
    from typing import get_args

    cls = pl.get_class("head", "linear")
    assert linear[0]["options"]["pool"]["allowed"] == list(get_args(cls.Options.model_fields["pool"].annotation))
    # a plugin name lists every class it registered
    strategies = json.loads(cli("plugins", "strategies", "--json", check=True).stdout)
    assert {i["name"] for i in strategies} == set(pl.registry().infos["strategies"].registered["strategy"])
    # a name under a prefix (hf:) finds the prefix's class; the human listing shows the options
    proc = cli("plugins", "whisper-tiny.en", check=True, env={"COLUMNS": "80"})
    assert "input" in proc.stderr and "padded | cut" in proc.stderr
    assert json.loads(cli("plugins", "hf:some/model", "--json", check=True).stdout)[0]["name"] == "hf:"
    bad = cli("plugins", "lnear")
    assert bad.returncode == 1 and "Did you mean 'linear'?" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
