"""The plugin contract checks itself: every hookspec is documented, listed in the README,
backed by a base class (where it registers classes) and exercised by a test, and pluggy
finds no hook implementation it does not know."""

from __future__ import annotations

import ast
import re

import pytest

from conftest import ROOT
from sercli import hookspecs
from sercli.core import plugins as pl

SPECS = hookspecs.families()
EXAMPLE = ROOT / "examples" / "sercli-example-plugin" / "sercli_example" / "__init__.py"


def test_the_families_are_derived_from_the_hookspecs():
    declared = {name for name, fn in vars(hookspecs).items() if hasattr(fn, "sercli_family")}
    assert declared == {fam.hook for fam in SPECS.values()}  # pluggy's mark: nothing left out
    assert pl.FAMILIES == {key: fam.hook for key, fam in SPECS.items()}
    assert set(pl.FAMILY_WORDS) == set(SPECS)


@pytest.mark.parametrize("key", sorted(SPECS))
def test_each_hookspec_is_documented_listed_and_tested(key):
    fam = SPECS[key]
    spec = getattr(hookspecs, fam.hook)
    assert (spec.__doc__ or "").strip(), f"{fam.hook} has no docstring"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    plugins_section = readme.split("## Plugins", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in plugins_section.splitlines() if line.startswith("|")]
    assert any(f"`{fam.hook}`" in row for row in rows), f"{fam.hook} is not in README's Plugins table"
    if fam.base is not None:
        import sercli.base

        base = getattr(sercli.base, fam.base, None)
        assert isinstance(base, type) and issubclass(base, sercli.base.Plugin), fam.base
    # exercised: the example plugin implements it and tests/test_example_plugin.py runs it
    implemented = {n.name for n in ast.parse(EXAMPLE.read_text()).body if isinstance(n, ast.FunctionDef)}
    assert fam.hook in implemented, f"the example plugin does not implement {fam.hook}"
    example_test = (ROOT / "tests" / "test_example_plugin.py").read_text()
    assert "set(families())" in example_test  # it checks the plugin registered every family
    others = [p for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_contract.py"]
    assert any(re.search(rf"\b{fam.hook}\b|\"{key}\"", p.read_text()) for p in others) or key in example_test


def test_pluggy_knows_every_hook_implementation():
    pl.reset()
    try:
        reg = pl.registry()
        reg.pm.check_pending()  # raises for a hookimpl that matches no hookspec
        assert all(info.error is None for info in reg.infos.values()), {
            n: i.error for n, i in reg.infos.items() if i.error}
    finally:
        pl.reset()


def test_one_plugin_is_called_alone_and_in_its_own_guard():
    """Through pluggy, but one plugin at a time: a failing hook keeps nothing it registered,
    and a plugin that registers before failing costs only itself."""
    import types

    from sercli.base import LLMBackend

    class Good(LLMBackend):
        name = "contract-good"

    class Lost(LLMBackend):
        name = "contract-lost"

    good = types.ModuleType("contract_good")
    bad = types.ModuleType("contract_bad")

    @hookspecs.hookimpl
    def register_llm_backends(register):
        register(Good)

    @hookspecs.hookimpl
    def failing(register):
        register(Lost)
        raise RuntimeError("half way")

    good.register_llm_backends = register_llm_backends
    bad.register_llm_backends = failing
    calls = []
    pl.reset()
    try:
        reg = pl.registry()
        undo = reg.pm.add_hookcall_monitoring(lambda name, impls, kw: calls.append((name, len(impls))),
                                              lambda *a: None)
        reg.register_module(good, "contract-good")
        reg.register_module(bad, "contract-bad")
        undo()
        assert pl.get_class("llm", "contract-good") is Good
        assert "contract-lost" not in pl.names("llm")
        assert "half way" in reg.infos["contract-bad"].error
        assert calls == [("register_llm_backends", 1), ("register_llm_backends", 1)]  # via pluggy, alone
    finally:
        pl.reset()
