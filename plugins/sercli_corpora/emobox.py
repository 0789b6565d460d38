"""EmoBox's metadata format (github.com/emo-box/EmoBox, ``data/<dataset>/*.jsonl``), both ways.

One JSON object a line: ``key`` (the id), ``dataset``, ``wav`` (the audio path, relative to the
data folder EmoBox runs in), ``type`` ("raw"), ``sample_rate``, ``num_frame`` (samples),
``task`` ("category"), ``length`` (seconds), ``emo`` (the dataset's own label, which EmoBox's
``label_map.json`` maps) and ``channel``; some datasets add ``start_time``/``end_time``.

`sercli prepare emobox FILE.jsonl` reads it: ``key`` -> id, ``wav`` -> audio (relative to
``-O root``, default the file's folder), ``emo`` -> raw_label (canonical emotion by name, or
``--map``), and every other field kept under ``emobox``; the speaker, which EmoBox does not
record, can be cut from the key with ``-O speaker_regex``. `sercli export emobox` writes the
records back: a record that came from EmoBox gets its own fields back unchanged (its ``emo``
is its raw label), any other record gets the fields EmoBox reads, with its canonical emotion.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Optional

from pydantic import Field, field_validator

from sercli.api import Corpus, SercliError, atomic_write_text, canonical
from sercli.api import Options as BaseOptions

MAPPED = ("key", "wav", "emo")  # the fields that become sercli's id, audio and raw_label


class EmoBox(Corpus):
    name = "emobox"
    description = "EmoBox metadata jsonl (key, dataset, wav, length, emo, channel...): read, and written by `sercli export emobox`"

    class Options(BaseOptions):
        root: Optional[Path] = Field(None, description="Folder the wav paths start from (default: the jsonl file's folder).")
        speaker_regex: Optional[str] = Field(
            None, description="Regex searched in each key: its group 'speaker', else its groups joined, "
                              "is the speaker (EmoBox has no speaker field; LOSO needs one), e.g. '^casia-\\d+-(\\w+?)-'.")

        @field_validator("speaker_regex")
        @classmethod
        def _compiles(cls, value):
            if value is not None:
                try:
                    if not re.compile(value).groups:
                        raise ValueError("needs a group, e.g. '^(\\w+?)-'")
                except re.error as exc:
                    raise ValueError(f"not a regular expression: {exc}") from None
            return value

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        if not (path.is_file() and path.suffix.lower() in (".jsonl", ".json")):
            raise SercliError(f"{path}: expected an EmoBox metadata file (.jsonl), e.g. data/casia/casia.jsonl")
        root = (self.options.root or path.parent).expanduser().resolve()
        pattern = re.compile(self.options.speaker_regex) if self.options.speaker_regex else None
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SercliError(f"{path} line {lineno}: not JSON ({exc.msg})") from None
            missing = [k for k in MAPPED if not isinstance(row, dict) or not row.get(k)]
            if missing:
                raise SercliError(f"{path} line {lineno}: no {', '.join(missing)} (EmoBox lines have key, wav and emo)")
            if row.get("start_time") is not None or row.get("end_time") is not None:
                raise SercliError(f"{path} line {lineno}: a segment (start_time/end_time) of {row['wav']}; "
                                  "sercli reads whole files: cut the segments into files first")
            record = {"id": str(row["key"]), "audio": str(root / row["wav"]), "emotion": canonical(str(row["emo"])),
                      "raw_label": str(row["emo"]), "emobox": {k: v for k, v in row.items() if k not in MAPPED}}
            if pattern is not None:
                match = pattern.search(record["id"])
                if match is None:
                    raise SercliError(f"{path} line {lineno}: -O speaker_regex does not match the key {record['id']!r}")
                record["speaker"] = match.groupdict().get("speaker") or "".join(g for g in match.groups() if g)
            yield record

    def export(self, records: list[dict[str, Any]], path: Path, root: Path | None = None) -> None:
        import soundfile as sf

        base = Path(root or path.parent).expanduser().resolve()
        lines = []
        for rec in records:
            if not rec.get("audio"):
                raise SercliError(f"record {rec['id']!r} has no audio: EmoBox lines point at audio files")
            audio = Path(rec["audio"])
            wav = os.path.relpath(audio, base) if base in audio.resolve().parents else str(audio)
            kept = rec.get("emobox")
            if isinstance(kept, dict):  # from EmoBox: its own fields back, in their order
                row = {"key": rec["id"], "wav": wav, "emo": rec.get("raw_label") or rec.get("emotion"), **kept}
            else:
                info = sf.info(str(audio))
                row = {"key": rec["id"], "dataset": (rec.get("provenance") or {}).get("plugin") or "sercli",
                       "wav": wav, "type": "raw", "sample_rate": info.samplerate, "num_frame": float(info.frames),
                       "task": "category", "length": rec.get("duration") or info.frames / info.samplerate,
                       "emo": rec.get("emotion"), "channel": 1}
                if not row["emo"]:
                    raise SercliError(f"record {rec['id']!r} has no emotion")
            lines.append(json.dumps(_in_emobox_order(row), ensure_ascii=False))
        atomic_write_text(path, "".join(line + "\n" for line in lines))

    def import_records(self, path: Path, store: Path | None = None) -> Iterator[dict[str, Any]]:
        yield from self.scan(path)


ORDER = ("key", "dataset", "wav", "type", "sample_rate", "num_frame", "task", "length", "emo", "channel")


def _in_emobox_order(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in ORDER if k in row}, **{k: v for k, v in row.items() if k not in ORDER}}
