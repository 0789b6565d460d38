"""Helpers shared by the corpus readers: finding audio files and saying clearly what is wrong."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable

from sercli.core import log
from sercli.api import SercliError

# Corpora ship WAV; shared or converted copies are often FLAC. Both are read by soundfile.
AUDIO_SUFFIXES = (".wav", ".flac")


def is_audio(path: Path) -> bool:
    # "._name" files are macOS resource forks that unzipped copies of IEMOCAP and others carry.
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("._") and path.is_file()


def audio_files(root: Path) -> list[Path]:
    """Every audio file under ``root``, sorted so manifests come out in a stable order."""
    return sorted(p for p in root.rglob("*") if is_audio(p))


def audio_path(stem: Path) -> Path:
    """``dir/name`` -> the existing ``dir/name.wav`` or ``.flac``; the ``.wav`` name when neither
    exists, so a missing file is reported under the name the corpus lists."""
    for suffix in AUDIO_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return stem.with_name(stem.name + AUDIO_SUFFIXES[0])


def found(path: Path, limit: int = 6) -> str:
    """A short listing of what is at ``path``, for error messages."""
    if not path.exists():
        return "nothing (no such file or folder)"
    if not path.is_dir():
        return f"a file ({path.name})"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
    if not names:
        return "an empty folder"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def not_corpus(corpus: str, path: Path, expected: str) -> SercliError:
    return SercliError(f"{path} does not look like {corpus}: expected {expected}; found {found(path)}")


def match_names(files: Iterable[Path], pattern: re.Pattern, corpus: str) -> list[tuple[Path, re.Match]]:
    """Files whose stem follows the corpus naming scheme; the others are counted in a warning
    (when nothing matches, the caller's not-this-corpus error says it instead)."""
    matched, other = [], []
    for f in files:
        m = pattern.fullmatch(f.stem)
        (matched if m else other).append((f, m))
    if other and matched:
        examples = ", ".join(f.name for f, _ in other[:3])
        log.warn(f"ignored {len(other)} audio files not named like {corpus} files (e.g. {examples})")
    return matched


def read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a CSV file with a header; a clear error naming the missing columns."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in required if c not in columns]
        if missing:
            raise SercliError(
                f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'no header'}"
            )
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
