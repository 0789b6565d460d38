"""Tools for TTS engines that speak an emotion through a table of their own settings (tempo,
pauses, loudness...), as the offline neural engines do (piper, hibari): the settings of one
emotion scaled from neutral, the text as it is spoken, a seed per utterance, sentences joined
with pauses, and the versions that decide the audio. Plugins get them from ``sercli.api``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import fields, replace
from typing import Any, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from sercli.core.errors import RecordError, SercliError

S = TypeVar("S")


def scaled_style(table: Mapping[str, S], emotion: str, scale: float,
                 limits: Mapping[str, tuple[float, float]], engine: str) -> S:
    """``table[emotion]`` (a dataclass of numbers) moved from ``table["neutral"]`` by ``scale``
    (0: neutral, 1: the table, above 1: exaggerated), each field named in ``limits`` clamped to
    its (low, high). SercliError naming ``engine`` and the emotions it knows for another emotion."""
    if emotion not in table:
        raise SercliError(f"{engine} has no settings for emotion {emotion!r}. Known: {', '.join(table)}")
    target, neutral = table[emotion], table["neutral"]
    names = {f.name for f in fields(target)}
    unknown = sorted(set(limits) - names)
    if unknown:
        raise ValueError(f"limits name fields the style has not: {', '.join(unknown)}")
    values = {}
    for name, (low, high) in limits.items():
        value = getattr(neutral, name) + scale * (getattr(target, name) - getattr(neutral, name))
        values[name] = float(min(max(value, low), high))
    return replace(target, **values)


def spoken_text(text: str) -> str:
    """``text`` as an engine is given it: unprintable characters as spaces, runs of whitespace
    as one space. RecordError when nothing is left."""
    clean = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if not clean:
        raise RecordError("cannot synthesise empty text")
    return clean


def utterance_seed(*parts: Any) -> int:
    """A 31-bit seed made of ``parts`` alone (JSON-encodable: text, emotion, voice, -O seed), so
    an utterance's audio does not depend on what was rendered before it, nor in which process."""
    return zlib.crc32(json.dumps(list(parts)).encode()) & 0x7FFFFFFF


def join_sentences(chunks: Sequence[np.ndarray], pause: float, sample_rate: int) -> np.ndarray:
    """The float32 audio of ``chunks`` (one per sentence) with ``pause`` seconds of silence between
    them (none before the first or after the last)."""
    gap = np.zeros(int(round(pause * sample_rate)), dtype=np.float32)
    pieces = [p for c in chunks for p in (np.asarray(c, dtype=np.float32).reshape(-1), gap)][:-1]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def package_versions(dists: Iterable[str], engine: str, install: str) -> dict[str, str]:
    """``{dist_with_underscores: version}`` of installed distributions (for an engine's identity
    and provenance); SercliError naming ``engine`` and ``install`` when one is missing."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in dists:
        try:
            out[dist.replace("-", "_")] = version(dist)
        except PackageNotFoundError:
            raise SercliError(f"the {engine} engine needs {dist}: {install}") from None
    return out
