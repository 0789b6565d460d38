"""The canonical emotion vocabulary and the ``--classes`` / ``--map`` rules of `sercli prepare`.

Every corpus maps its own raw labels (``exc``, ``W``, ``06``...) to one vocabulary, so that
manifests from different corpora can be trained and evaluated together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from sercli.core.errors import SercliError

CANONICAL = (
    "angry",
    "happy",
    "neutral",
    "sad",
    "fear",
    "disgust",
    "surprise",
    "calm",
    "boredom",
    "contempt",
    "excited",
    "frustrated",
    "other",
)

# Spellings met in corpora and user CSVs (the generic loader relies on this table).
SYNONYMS = {
    "anger": "angry",
    "ang": "angry",
    "mad": "angry",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "neu": "neutral",
    "sadness": "sad",
    "fearful": "fear",
    "fea": "fear",
    "afraid": "fear",
    "disgusted": "disgust",
    "dis": "disgust",
    "surprised": "surprise",
    "sur": "surprise",
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    "ps": "surprise",
    "bored": "boredom",
    "exc": "excited",
    "excitement": "excited",
    "fru": "frustrated",
    "frustration": "frustrated",
    "oth": "other",
}


def canonical(label: str) -> str | None:
    """``"Happiness"`` -> ``"happy"``; None when the label is not known."""
    key = label.strip().lower().replace("-", "_").replace(" ", "_")
    if key in CANONICAL:
        return key
    return SYNONYMS.get(key)


def emotion_key(label: str) -> str:
    """``canonical(label)``, or ``label`` itself (trimmed, in lower case) when sercli does not
    know it: for tables of a plugin (prompts, voice styles) that pass other emotions through."""
    return canonical(label) or label.strip().lower()


def _check_canonical(label: str, where: str) -> str:
    out = canonical(label)
    if out is None:
        raise SercliError(f"{where}: {label!r} is not an emotion sercli knows (known: {', '.join(CANONICAL)})")
    return out


@dataclass
class LabelRules:
    """What ``--map`` merges and which labels ``--classes`` keeps (None: keep all)."""

    mapping: dict[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None

    @classmethod
    def from_cli(
        cls,
        classes: str | None,
        maps: list[str] | None,
        default_classes: Iterable[str] | None = None,
        default_map: dict[str, str] | None = None,
    ) -> "LabelRules":
        """Flags given on the command line replace the corpus defaults; ``all``/``none`` clear them."""
        if classes is None:
            kept = tuple(default_classes) if default_classes else None
        elif classes.strip().lower() == "all":
            kept = None
        else:
            names = [c for c in classes.split(",") if c.strip()]
            if not names:
                raise SercliError("--classes is empty: give labels like angry,happy,neutral,sad or 'all'")
            kept = tuple(dict.fromkeys(_check_canonical(c, "--classes") for c in names))
        if maps is None:
            mapping = dict(default_map or {})
        else:
            mapping = {}
            for item in ",".join(maps).split(","):
                item = item.strip()
                if not item or item.lower() == "none":
                    continue
                src, sep, dst = item.partition("=")
                if not sep or not src.strip() or not dst.strip():
                    raise SercliError(f"--map {item!r}: expected FROM=TO, e.g. excited=happy")
                mapping[src.strip().lower()] = _check_canonical(dst, f"--map {item}")
        return cls(mapping, kept)

    def label(self, raw_label: str, emotion: str | None) -> str | None:
        """The final label: ``--map`` may name a raw label (``exc``) or a canonical one (``excited``)."""
        key = str(raw_label).strip().lower()
        if key in self.mapping:
            return self.mapping[key]
        if emotion is not None and emotion in self.mapping:
            return self.mapping[emotion]
        return emotion

    def keeps(self, label: str) -> bool:
        return self.classes is None or label in self.classes

    def describe(self) -> dict[str, Any]:
        return {"classes": list(self.classes) if self.classes else "all", "map": dict(self.mapping)}
