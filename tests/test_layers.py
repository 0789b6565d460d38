"""The house rule, checked over the import graph: packages by stage, imports pointing one way.

    contract (the plugin families' base classes and the two errors: imports nothing of sercli)
      <- core (records, errors, plugin manager, I/O)
      <- text | synthesis | features       (the stages before learning; none imports another)
      <- learning <- evaluation <- runs
      <- commands, cli, api                (the faces)

Every import counts, at module top or inside a function; only ``if TYPE_CHECKING:`` blocks are
left out. A module may import its own layer only inside its own package.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from conftest import ROOT

LAYERS = [
    ("sercli.contract",),
    ("sercli", "sercli.core", "sercli.base", "sercli.hookspecs"),
    ("sercli.text", "sercli.synthesis", "sercli.features"),
    ("sercli.learning",),
    ("sercli.evaluation",),
    ("sercli.runs",),
    ("sercli.commands", "sercli.cli", "sercli.api", "sercli.__main__"),
]
MAX_LINES = 400


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _place(module: str) -> tuple[int, str]:
    """(layer, package) of a sercli module: the longest prefix named in LAYERS."""
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (level, prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    return best


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module.split(".") if is_package else module.split(".")[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """sercli module -> the sercli modules it imports (a name imported from a package that is a
    submodule counts as that submodule; otherwise as the package)."""
    files = {(_module_name(p, root)): p for p in (root / "sercli").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for imp in _imports(tree, name, path.name == "__init__.py"):
            if imp == "sercli" or imp.startswith("sercli."):
                while imp not in files and "." in imp:
                    imp = imp.rsplit(".", 1)[0]
                if imp in files and imp != name:
                    targets.add(imp)
        graph[name] = targets
    return graph


def violations(root: Path) -> list[str]:
    graph = import_graph(root)
    found = []
    for src, targets in sorted(graph.items()):
        s_level, s_pkg = _place(src)
        for dst in sorted(targets):
            d_level, d_pkg = _place(dst)
            if dst == "sercli":
                continue
            if d_level > s_level:
                found.append(f"upward: {src} (layer {s_level}) imports {dst} (layer {d_level})")
            elif d_level == s_level == 2 and d_pkg != s_pkg:
                found.append(f"sideways: {src} imports {dst} (another package of layer {s_level})")
    found += [f"cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_imports_point_one_way_and_form_no_cycle():
    assert violations(ROOT) == []


def test_the_check_fails_on_a_planted_upward_import_and_cycle(tmp_path):
    shutil.copytree(ROOT / "sercli", tmp_path / "sercli", ignore=shutil.ignore_patterns("__pycache__"))
    records = tmp_path / "sercli" / "core" / "fsutil.py"
    records.write_text(records.read_text() + "\n\ndef _planted():\n    from sercli.learning import train\n")
    found = violations(tmp_path)
    assert any(v.startswith("upward: sercli.core.fsutil") and "sercli.learning.train" in v for v in found)
    common = tmp_path / "sercli" / "contract" / "common.py"
    common.write_text(common.read_text() + "\nfrom sercli.core import records  # noqa\n")
    assert any(v.startswith("upward: sercli.contract.common") for v in violations(tmp_path))
    assert any(v.startswith("cycle:") and "sercli.core.fsutil" in v for v in found)


def test_a_stage_does_not_import_a_peer_stage(tmp_path):
    shutil.copytree(ROOT / "sercli", tmp_path / "sercli", ignore=shutil.ignore_patterns("__pycache__"))
    textgen = tmp_path / "sercli" / "text" / "textgen.py"
    textgen.write_text(textgen.read_text() + "\nfrom sercli.synthesis import synth  # noqa\n")
    assert any(v.startswith("sideways: sercli.text.textgen") for v in violations(tmp_path))


def test_no_module_is_over_the_line_limit():
    long = {str(p.relative_to(ROOT)): n for p in [*(ROOT / "sercli").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
