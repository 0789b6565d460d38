"""Tracker `jsonl-log`: every scalar a run reports, one JSON line each (example plugin)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sercli.api import Tracker


class JsonlLog(Tracker):
    name = "jsonl-log"
    description = "Writes each scalar, text and figure of a run as a JSON line in scalars.jsonl (example plugin)."

    def start(self, where: Path, name: str, params: dict[str, Any]) -> None:
        Path(where).mkdir(parents=True, exist_ok=True)
        self.file = open(Path(where) / "scalars.jsonl", "w", encoding="utf-8")
        self._write({"run": name, "params": params})

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        self._write({"tag": tag, "value": value, "step": step})

    def text(self, tag: str, text: str) -> None:
        self._write({"tag": tag, "text": text})

    def figure(self, tag: str, png: Path) -> None:
        self._write({"tag": tag, "figure": str(png)})

    def finish(self) -> None:
        if getattr(self, "file", None) is not None:
            self.file.close()

    def _write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row, default=str) + "\n")
