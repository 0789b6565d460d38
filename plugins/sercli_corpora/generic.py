"""Any corpus given as a CSV file, or as a folder with one subfolder per label.

CSV: a header with ``path`` and ``label`` (also accepted: file/filename/audio, emotion), and
optionally id, speaker, session, gender, transcript (or text), split. Relative paths are read
from the CSV's folder (or ``-O root=DIR``). Labels are mapped to the canonical vocabulary by
name (``anger`` -> angry, ``pleasant_surprise`` -> surprise); others need ``--map``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

from pydantic import Field

from sercli.api import Corpus, SercliError
from sercli.api import Options as BaseOptions
from sercli_corpora.common import audio_files, not_corpus, read_csv
from sercli.api import canonical

PATH_COLUMNS = ("path", "file", "filename", "audio")
LABEL_COLUMNS = ("label", "emotion")
# Optional CSV column -> record field.
EXTRA_COLUMNS = {
    "id": "id",
    "speaker": "speaker",
    "session": "session",
    "gender": "gender",
    "transcript": "transcript",
    "text": "transcript",
    "split": "split",
}


class Generic(Corpus):
    name = "generic"
    description = "Any corpus: a CSV (path,label[,speaker,session,...]) or a folder per label"

    class Options(BaseOptions):
        root: Optional[Path] = Field(
            None, description="Folder that relative CSV paths start from (default: the CSV's folder)."
        )

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        if path.is_file() and path.suffix.lower() == ".csv":
            yield from self._from_csv(path)
        elif path.is_dir():
            yield from self._from_folders(path)
        else:
            raise not_corpus(
                "generic corpus", path, "a CSV file (path,label,...) or a folder with one subfolder per label"
            )

    def _from_csv(self, path: Path) -> Iterator[dict[str, Any]]:
        rows = read_csv(path, [])
        columns = rows[0].keys() if rows else []
        path_col = next((c for c in PATH_COLUMNS if c in columns), None)
        label_col = next((c for c in LABEL_COLUMNS if c in columns), None)
        if not rows or path_col is None or label_col is None:
            raise SercliError(
                f"{path}: expected a header with a path column ({'/'.join(PATH_COLUMNS)}) and a label "
                f"column ({'/'.join(LABEL_COLUMNS)}) and at least one row; found {', '.join(columns) or 'no rows'}"
            )
        root = (self.options.root or path.parent).expanduser().resolve()
        for lineno, row in enumerate(rows, 2):
            if not row[path_col] or not row[label_col]:
                raise SercliError(f"{path} line {lineno}: empty {path_col if not row[path_col] else label_col}")
            audio = root / row[path_col]
            record = {
                "id": Path(row[path_col]).with_suffix("").as_posix(),
                "audio": str(audio),
                "emotion": canonical(row[label_col]),
                "raw_label": row[label_col],
            }
            for column, key in EXTRA_COLUMNS.items():
                if row.get(column):
                    record[key] = row[column]
            yield record

    def _from_folders(self, path: Path) -> Iterator[dict[str, Any]]:
        folders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
        files = [(d, f) for d in folders for f in audio_files(d)]
        if not files:
            raise not_corpus("generic corpus", path, "one subfolder per label holding .wav/.flac files, or a CSV file")
        for label_dir, f in files:
            yield {
                "id": f.relative_to(path).with_suffix("").as_posix(),
                "audio": str(f),
                "emotion": canonical(label_dir.name),
                "raw_label": label_dir.name,
            }
