"""`sercli prepare` on the real EmoDB and TESS copies in ../shared/data (FLAC): the manifests
must hold the counts per label and per speaker that each corpus's README.md states."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from sercli.core.labels import canonical

pytestmark = pytest.mark.slow


def readme_counts(readme: Path) -> dict[str, Counter]:
    """The README's `| label | files |` and `| speaker | files |` tables; labels made canonical."""
    tables: dict[str, Counter] = {}
    current = None
    for line in readme.read_text().splitlines():
        header = re.fullmatch(r"\|\s*(label|speaker)\s*\|\s*files\s*\|", line.strip())
        row = re.fullmatch(r"\|\s*([^|]+?)\s*\|\s*(\d+)\s*\|", line.strip())
        if header:
            current = tables.setdefault(header.group(1), Counter())
        elif row and current is not None:
            current[row.group(1)] = int(row.group(2))
        elif not line.startswith("|"):
            current = None
    tables["label"] = Counter({canonical(k): n for k, n in tables["label"].items()})
    return tables


def manifest_counts(cli, tmp_path: Path, *args) -> dict[str, Counter]:
    out = tmp_path / "manifest.jsonl"
    cli("prepare", *args, "-o", out, cwd=tmp_path, check=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(Path(r["audio"]).is_file() and r["duration"] > 0 for r in records)
    return {
        "label": Counter(r["emotion"] for r in records),
        "speaker": Counter(r["speaker"] for r in records),
    }


@pytest.mark.parametrize("corpus", ["emodb", "tess"])
def test_corpus_reader_matches_readme(cli, shared_data_dir, tmp_path, corpus):
    folder = shared_data_dir / corpus
    assert manifest_counts(cli, tmp_path, corpus, folder / "audio") == readme_counts(folder / "README.md")


@pytest.mark.parametrize("corpus", ["emodb", "tess"])
def test_generic_csv_matches_readme(cli, shared_data_dir, tmp_path, corpus):
    folder = shared_data_dir / corpus
    counts = manifest_counts(cli, tmp_path, "generic", folder / "manifest.csv")
    assert counts == readme_counts(folder / "README.md")
