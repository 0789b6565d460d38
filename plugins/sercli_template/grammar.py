"""A tiny template grammar read from the JSON phrase banks in ``sercli_template/banks``.

A template is a sentence with ``{slot}`` placeholders; each slot is a list of fillers, which may
contain placeholders themselves. ``common.json`` holds slots shared by every emotion; an emotion's
own file (``<emotion>.json``) may override them.

English banks lie in ``banks/`` itself; every other language has its own folder
(``banks/de``, ``banks/it``) with banks written for that language, not translated: each slot
holds fillers of one grammatical form (a German slot of accusative objects, one of past
participles that close a clause), so that the templates put them where the language wants
them (verb second, verb last in a subordinate clause, articles agreeing in gender).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from sercli.api import SercliError

SLOT = re.compile(r"\{(\w+)\}")
_MAX_DEPTH = 6  # slots inside fillers nest at most this deep (guards against cycles)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?])")
# a lower-case letter (any script: "über", "è") opening a sentence, after ¿ or ¡ too
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([¿¡]?)([^\W\d_])")
DEFAULT_LANGUAGE = "en"


def _banks(language: str = DEFAULT_LANGUAGE):
    root = files("sercli_template.banks")
    return root if language == DEFAULT_LANGUAGE else root.joinpath(language)


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """The languages with phrase banks: ``en`` plus each sub-folder of ``banks``."""
    root = files("sercli_template.banks")
    found = {p.name for p in root.iterdir() if p.is_dir() and p.joinpath("common.json").is_file()}
    return tuple(sorted(found | {DEFAULT_LANGUAGE}))


def check_language(language: str) -> None:
    if language not in languages():
        raise SercliError(
            f"The template backend has no phrase banks in language {language!r}. Known: {', '.join(languages())}"
        )


@lru_cache(maxsize=None)
def emotions(language: str = DEFAULT_LANGUAGE) -> tuple[str, ...]:
    check_language(language)
    return tuple(
        sorted(p.name[:-5] for p in _banks(language).iterdir()
               if p.name.endswith(".json") and p.name != "common.json")
    )


@lru_cache(maxsize=None)
def bank_digest(language: str = DEFAULT_LANGUAGE) -> str:
    """Short hash of every bank file of ``language``, so provenance changes when the banks do."""
    digest = hashlib.sha256()
    for p in sorted(_banks(language).iterdir(), key=lambda p: p.name):
        if p.name.endswith(".json"):
            digest.update(p.name.encode() + p.read_bytes())
    return digest.hexdigest()[:12]


def tidy(text: str) -> str:
    """Collapse the gaps left by empty fillers and capitalise every sentence start."""
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2) + m.group(3).upper(), text)


@dataclass(frozen=True)
class Grammar:
    emotion: str
    templates: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]

    def sample(self, rng: random.Random) -> str:
        return tidy(self._fill(rng.choice(self.templates), rng, 0))

    def _fill(self, text: str, rng: random.Random, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise SercliError(f"Phrase bank {self.emotion!r}: slots nest too deep (a slot refers to itself?)")
        return SLOT.sub(lambda m: self._fill(rng.choice(self.slots[m.group(1)]), rng, depth + 1), text)

    def check(self) -> None:
        """Fail at load time, not mid-run, on a placeholder without a slot or an empty slot."""
        texts = list(self.templates) + [f for fillers in self.slots.values() for f in fillers]
        missing = sorted({name for t in texts for name in SLOT.findall(t)} - set(self.slots))
        if missing:
            raise SercliError(f"Phrase bank {self.emotion!r} uses undefined slots: {', '.join(missing)}")
        empty = sorted(name for name, fillers in self.slots.items() if not fillers)
        if not self.templates or empty:
            raise SercliError(f"Phrase bank {self.emotion!r} has no templates or empty slots: {empty}")


@lru_cache(maxsize=None)
def load(emotion: str, language: str = DEFAULT_LANGUAGE) -> Grammar:
    if emotion not in emotions(language):
        where = "" if language == DEFAULT_LANGUAGE else f" in language {language!r}"
        raise SercliError(
            f"The template backend has no phrase bank for emotion {emotion!r}{where}. "
            f"Known: {', '.join(emotions(language))}"
        )
    common = json.loads(_banks(language).joinpath("common.json").read_text(encoding="utf-8"))
    own = json.loads(_banks(language).joinpath(f"{emotion}.json").read_text(encoding="utf-8"))
    slots = {k: tuple(v) for k, v in {**common["slots"], **own["slots"]}.items()}
    name = emotion if language == DEFAULT_LANGUAGE else f"{language}/{emotion}"
    grammar = Grammar(name, tuple(own["templates"]), slots)
    grammar.check()
    return grammar
