"""Corpus `folders`: one folder per emotion holding `<speaker>_<anything>.wav` files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from sercli.api import Corpus


class Folders(Corpus):
    name = "folders"
    description = "A folder per emotion with <speaker>_*.wav files (example plugin)."

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        from sercli.api import SercliError, canonical, safe_name

        if not path.is_dir():
            raise SercliError(f"{path}: expected a folder holding <emotion>/<speaker>_*.wav")
        found = False
        for folder in sorted(p for p in path.iterdir() if p.is_dir()):
            for wav in sorted(folder.glob("*.wav")):
                speaker, sep, _ = wav.stem.partition("_")
                if not sep:
                    continue
                found = True
                yield {
                    "id": safe_name(f"{folder.name}-{wav.stem}"),
                    "audio": str(wav),
                    "emotion": canonical(folder.name),
                    "raw_label": folder.name,
                    "speaker": speaker,
                    "session": speaker,
                }
        if not found:
            raise SercliError(f"{path}: no <emotion>/<speaker>_*.wav files")
