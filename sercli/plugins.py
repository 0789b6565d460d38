"""Plugin manager: loads the ``sercli`` entry-point group one plugin at a time."""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import sys
from dataclasses import dataclass, field

import pluggy

from sercli import hookspecs
from sercli.errors import SercliError

GROUP = "sercli"
# family -> hook name, and the word used in messages
FAMILIES = {
    "llm": "register_llm_backends",
    "tts": "register_tts_engines",
    "backbone": "register_backbones",
    "strategy": "register_strategies",
    "corpus": "register_corpora",
}
FAMILY_WORDS = {
    "llm": "LLM backend",
    "tts": "TTS engine",
    "backbone": "backbone",
    "strategy": "strategy",
    "corpus": "corpus",
}


@dataclass
class PluginInfo:
    name: str
    version: str
    module: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


class _Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("sercli")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.classes: dict[str, dict[str, tuple[type, str]]] = {f: {} for f in FAMILIES}
        self._loaded = False

    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        only = os.environ.get("SERCLI_LOAD_PLUGINS")
        allowed = None if only is None else {s.strip() for s in only.split(",") if s.strip()}
        for ep in importlib.metadata.entry_points(group=GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            if ep.name in self.infos:  # same plugin visible twice on sys.path
                continue
            version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, version, ep.value)
            self.infos[ep.name] = info
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # one broken plugin must not break the CLI
                info.error = f"{type(exc).__name__}: {exc}"
                print(f"Warning: plugin {ep.name!r} failed to load: {info.error}", file=sys.stderr)
                continue
            self._collect(ep.name, module)

    def register_module(self, module, name: str) -> None:
        """Register an in-process plugin (tests, notebooks)."""
        self.load()
        self.pm.register(module, name=name)
        self.infos[name] = PluginInfo(name, "local", getattr(module, "__name__", name))
        self._collect(name, module)

    def _collect(self, plugin_name: str, module) -> None:
        info = self.infos[plugin_name]
        for family, hook in FAMILIES.items():
            impl = getattr(module, hook, None)
            if impl is None:
                continue

            def register(cls, name: str | None = None, _family=family):
                key = name or getattr(cls, "name", None)
                if not key:
                    raise SercliError(f"Plugin {plugin_name!r} registered {cls!r} without a name")
                table = self.classes[_family]
                if key in table and table[key][1] != plugin_name:
                    raise SercliError(
                        f"{FAMILY_WORDS[_family].capitalize()} {key!r} is registered by both "
                        f"{table[key][1]!r} and {plugin_name!r}; uninstall one of them"
                    )
                table[key] = (cls, plugin_name)
                info.registered.setdefault(_family, []).append(key)

            try:
                impl(register=register)
            except SercliError:
                raise
            except Exception as exc:
                info.error = f"{hook}: {type(exc).__name__}: {exc}"
                print(f"Warning: plugin {plugin_name!r} failed in {hook}: {exc}", file=sys.stderr)


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


def create(family: str, name: str, options: dict | None = None):
    """Build the plugin object registered under ``name`` with validated options."""
    from sercli.base import validate_options

    cls = get_class(family, name)
    opts = validate_options(cls, options or {}, f"{FAMILY_WORDS[family]} {name!r}")
    return cls(name=name, options=opts)
