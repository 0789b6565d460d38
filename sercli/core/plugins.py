"""Plugin manager: loads the ``sercli`` entry-point group one plugin at a time.

One bad plugin costs one line on stderr and nothing else: an import or a hook that fails,
raises SystemExit or KeyboardInterrupt, or registers something unusable (no name, not a
class of its family, a name already taken) is reported, and the rest loads. Plugins import
and register with stdout (the Python object and file descriptor 1) pointed at stderr, so a
``print`` in a plugin never lands among the records. Built-ins (the entry points of the
``sercli`` distribution) load first: a third-party entry point or class with a built-in's
name is ignored and reported, never swapped in. A real Ctrl-C still interrupts.

Hooks are called through pluggy (so its ordering, tracing and monitoring apply), one plugin at a
time: ``pm.subset_hook_caller`` leaves out every other plugin, so each call runs inside that
plugin's own guard, and what one plugin registers, or fails to, never touches another. The
families are derived from the hookspecs (``sercli.hookspecs.families``).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import pluggy

from sercli import hookspecs
from sercli.core import fastexit
from sercli.core import stdio
from sercli.core.errors import SercliError

GROUP = "sercli"
BUILTIN_DIST = "sercli"
# derived from the hookspecs: family -> hook name, the word used in messages, the base class
FAMILIES = {key: fam.hook for key, fam in hookspecs.families().items()}
FAMILY_WORDS = {key: fam.word for key, fam in hookspecs.families().items()}
FAMILY_BASES = {key: fam.base for key, fam in hookspecs.families().items() if fam.base}
# names of the built-in commands (sercli.cli fills it): a plugin command may not take one
BUILTIN_COMMANDS: set[str] = set()


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    distribution: str = "?"


class _Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("sercli")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.ignored: list[PluginInfo] = []  # entry points whose name another plugin has
        self.classes: dict[str, dict[str, tuple[type, str]]] = {f: {} for f in FAMILIES}
        self._loaded = False

    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        only = os.environ.get("SERCLI_LOAD_PLUGINS")
        allowed = None if only is None else {s.strip() for s in only.split(",") if s.strip()}
        eps = [ep for ep in importlib.metadata.entry_points(group=GROUP) if allowed is None or ep.name in allowed]
        eps.sort(key=lambda ep: _dist_name(ep) != BUILTIN_DIST)  # built-ins first (a stable sort)
        for ep in eps:
            dist = _dist_name(ep)
            info = PluginInfo(ep.name, ep.dist.version if ep.dist else "?", ep.value, distribution=dist)
            first = self.infos.get(ep.name)
            if first is not None:
                if first.distribution == dist:  # the same distribution visible twice on sys.path
                    continue
                whose = "a built-in plugin" if first.distribution == BUILTIN_DIST else f"plugin {first.module!r} ({first.distribution})"
                info.error = f"ignored: the name {ep.name!r} belongs to {whose}; rename this entry point"
                self.ignored.append(info)
                _warn(f"plugin {ep.name!r} from {dist} {info.version} ({ep.value}) {info.error}")
                continue
            self.infos[ep.name] = info
            stdio.add_plugin_package(ep.value)  # its prints, now and later, go to stderr
            problems: list[str] = []
            with _guarded():
                try:
                    module = ep.load()
                    self.pm.register(module, name=ep.name)
                except BaseException as exc:  # SystemExit, KeyboardInterrupt from a plugin too
                    if fastexit.is_signal(exc):
                        raise
                    problems.append(f"failed to load: {_describe(exc)}")
                else:
                    problems += self._collect(ep.name, module)
            self._report(info, problems)

    def register_module(self, module, name: str) -> None:
        """Register an in-process plugin (tests, notebooks)."""
        self.load()
        stdio.add_plugin_package(getattr(module, "__name__", ""))
        self.pm.register(module, name=name)
        self.infos[name] = PluginInfo(name, "local", getattr(module, "__name__", name), distribution="local")
        with _guarded():
            problems = self._collect(name, module)
        self._report(self.infos[name], problems)

    def _report(self, info: PluginInfo, problems: list[str]) -> None:
        if problems:
            info.error = "; ".join(dict.fromkeys(problems))
            _warn(f"plugin {info.name!r} {info.error}")

    def _collect(self, plugin_name: str, module) -> list[str]:
        """Call the plugin's hooks through pluggy, one plugin at a time; keep what each hook
        registered only if the hook returned. Returns the problems, one phrase each."""
        problems = self._unknown_hooks(module)
        others = [p for p in self.pm.get_plugins() if p is not module]
        for family, hook in FAMILIES.items():
            if not any(impl.plugin is module for impl in getattr(self.pm.hook, hook).get_hookimpls()):
                continue
            # this plugin's implementations only: pluggy orders, traces and monitors the call,
            # and one plugin's failure never stops (or undoes) another's
            caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
            offered: list[tuple[object, object]] = []

            def register(obj, name=None, _offered=offered) -> None:
                _offered.append((obj, name))

            try:
                caller(register=register)
            except BaseException as exc:
                if fastexit.is_signal(exc):
                    raise
                problems.append(f"failed in {hook}: {_describe(exc)}")
                continue
            for obj, name in offered:
                problem = self._add(plugin_name, family, obj, name)
                if problem:
                    problems.append(problem)
        return problems

    def _unknown_hooks(self, module) -> list[str]:
        """What ``pm.check_pending()`` would raise for this plugin, as phrases: a hookimpl
        whose name is no sercli hook (a typo) is never called."""
        problems = []
        for caller in self.pm.get_hookcallers(module) or []:
            mine = [impl for impl in caller.get_hookimpls() if impl.plugin is module]
            if caller.spec is None and not all(impl.optionalhook for impl in mine):
                hint = difflib.get_close_matches(caller.name, FAMILIES.values(), n=1)
                problems.append(f"implements {caller.name!r}, which is no sercli hook"
                                + (f" (did you mean {hint[0]!r}?)" if hint else "") + "; never called")
        return problems

    def _add(self, plugin_name: str, family: str, cls, name) -> str | None:
        """Register one class, or say in a phrase why not."""
        word = FAMILY_WORDS[family]
        if family == "command":
            return self._add_command(plugin_name, cls, name)
        if not isinstance(cls, type):
            return f"registered {_short(cls)} as {_a(word)}, but it is not a class; ignored"
        import sercli.base

        base = getattr(sercli.base, FAMILY_BASES[family])
        if not issubclass(cls, base):
            return f"registered {cls.__name__} as {_a(word)}, but it does not subclass sercli.base.{base.__name__}; ignored"
        key = name if name is not None else getattr(cls, "name", None)
        if not isinstance(key, str) or not key.strip():
            return f"registered {word} {cls.__name__} without a name; ignored"
        table = self.classes[family]
        # a name under another plugin's prefix (hf: ...) would silently take over those names
        taken = key if key in table else next(
            (k for k in table if k.endswith(":") and key.startswith(k) and table[k][1] != plugin_name), None)
        if taken is not None:
            owner = table[taken][1]
            if owner == plugin_name:
                return f"registered {word} {key!r} twice; the first is kept"
            whose = "built-in plugin" if self.infos[owner].distribution == BUILTIN_DIST else "plugin"
            if taken != key:
                return f"registered {word} {key!r}, a name under {whose} {owner!r}'s prefix {taken!r}; ignored"
            return f"registered {word} {key!r}, which {whose} {owner!r} already registered; ignored"
        stdio.add_plugin_package(getattr(cls, "__module__", "") or "")
        table[key] = (cls, plugin_name)
        self.infos[plugin_name].registered.setdefault(family, []).append(key)
        return None


    def _add_command(self, plugin_name: str, obj, name) -> str | None:
        if not callable(obj) and type(obj).__name__ != "Typer":
            return f"registered {_short(obj)} as a command, but it is neither a function nor a typer.Typer; ignored"
        if name is None:
            name = getattr(getattr(obj, "info", None), "name", None) or getattr(obj, "__name__", None)
            name = name.replace("_", "-") if isinstance(name, str) else None
        if not isinstance(name, str) or not name.strip() or name.startswith("-") or " " in name:
            return f"registered command {_short(obj)} without a usable name; ignored"
        if name in BUILTIN_COMMANDS:
            return f"registered command {name!r}, which is a built-in command; ignored"
        table = self.classes["command"]
        if name in table:
            owner = table[name][1]
            if owner == plugin_name:
                return f"registered command {name!r} twice; the first is kept"
            return f"registered command {name!r}, which plugin {owner!r} already registered; ignored"
        table[name] = (obj, plugin_name)
        self.infos[plugin_name].registered.setdefault("command", []).append(name)
        return None


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return name.lower().replace("_", "-") if name else "?"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiouAEIOU' or word.startswith('LLM') else 'a'} {word}"


def _short(obj) -> str:
    text = " ".join(repr(obj).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _warn(msg: str) -> None:
    try:
        print(f"Warning: {msg}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


@contextmanager
def _guarded():
    """Run plugin code with stdout pointing at stderr: ``print`` and ``sys.stdout`` (flushed
    here, while file descriptor 1 is still stderr), writes to descriptor 1 (subprocesses,
    C code, ``os.write``) and C stdio's buffer. A plugin that replaces ``sys.stdout``,
    closes descriptor 1, installs its own handler for Ctrl-C or changes the working folder gets
    them put back."""
    handlers = fastexit.saved_handlers()
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    stdout = sys.stdout
    _flush(stdout)
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1: nothing to protect there
        saved = None
    else:
        try:
            os.dup2(2, 1)
        except OSError:
            os.close(saved)
            saved = None
    try:
        yield
    finally:
        if sys.stdout is not stdout:
            _flush(sys.stdout)
            sys.stdout = stdout
        _flush(stdout)
        _flush_c_stdio()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
        fastexit.restore_handlers(handlers)
        if cwd is not None:  # relative paths the user gave (-o out.jsonl) keep their meaning
            try:
                if os.getcwd() != cwd:
                    os.chdir(cwd)
            except OSError:
                os.chdir(cwd)


def _flush(stream) -> None:
    try:
        stream.flush()
    except Exception:
        pass


def _flush_c_stdio() -> None:
    """A C extension's printf sits in C stdio's buffer: flush it while it goes to stderr."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:
        pass


_registry: _Registry | None = None


def registry() -> _Registry:
    global _registry
    if _registry is None:
        _registry = _Registry()
        _registry.load()
    return _registry


def reset() -> None:
    """Forget loaded plugins (tests)."""
    global _registry
    _registry = None


def names(family: str) -> list[str]:
    return sorted(registry().classes[family])


def _lookup(family: str, name: str) -> tuple[type, str] | None:
    """(class, plugin) registered under ``name``, or under a prefix (``hf:``) it starts with."""
    table = registry().classes[family]
    if name in table:
        return table[name]
    for key, entry in table.items():
        if key.endswith(":") and name.startswith(key):
            return entry
    return None


def get_class(family: str, name: str) -> type:
    found = _lookup(family, name)
    if found is not None:
        return found[0]
    known = sorted(registry().classes[family])
    word = FAMILY_WORDS[family]
    hint = difflib.get_close_matches(name, known, n=1)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    raise SercliError(
        f"Unknown {word} {name!r}.{did_you_mean} Known: {', '.join(known) or '(none installed)'}"
    )


def commands() -> dict[str, object]:
    """Plugin commands: name -> the function or typer.Typer app a plugin registered."""
    return {name: entry[0] for name, entry in registry().classes["command"].items()}


def create(family: str, name: str, options: dict | None = None):
    """Build the plugin object registered under ``name`` with validated options."""
    from sercli.contract.common import validate_options

    cls = get_class(family, name)
    opts = validate_options(cls, options or {}, f"{FAMILY_WORDS[family]} {name!r}")
    return cls(name=name, options=opts)


def describe(family: str, obj) -> str:
    """A plugin object as messages name it: ``gate 'ok' (plugin 'bad-gate' 1.0)``, the family's
    word, the name it was created under and the plugin (entry point and version) that
    registered it. Outside a loaded registry (a worker process) the entry point whose package
    holds the class, found without importing anything; else the class's module."""
    name = getattr(obj, "name", None) or type(obj).__name__
    word = FAMILY_WORDS.get(family, family)
    entry = _lookup(family, name) if _registry is not None and family in _registry.classes else None
    if entry is not None and entry[0] is type(obj):
        info = _registry.infos.get(entry[1])
        version = f" {info.version}" if info is not None and info.version not in ("?", "") else ""
        return f"{word} {name!r} (plugin {entry[1]!r}{version})"
    top = type(obj).__module__.split(".")[0]
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.value.split(":")[0].split(".")[0] == top:
            version = f" {ep.dist.version}" if ep.dist is not None else ""
            return f"{word} {name!r} (plugin {ep.name!r}{version})"
    return f"{word} {name!r} ({type(obj).__module__}.{type(obj).__qualname__})"
