"""MSP-Podcast (Lotfian & Busso): podcast segments with crowd-sourced consensus labels.

Layout read here::

    Labels/labels_consensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    Audios/MSP-PODCAST_0002_0033.wav   (``Audio/`` in older releases)
    Transcripts/MSP-PODCAST_0002_0033.txt   (where the release has them)

``Split_Set`` is the official partition (Train, Development, Test1, Test2, and Test3 in newer
releases); it is kept as ``split``, for `sercli train --cv field:split` (train on Train,
validate on Development, one fold per test partition). MSP-Podcast has no sessions, so
``session`` is left out: leaving one "session" out in turn would otherwise train on the test
partitions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from pydantic import Field

from sercli.api import Corpus, SercliError
from sercli.api import Options as BaseOptions
from sercli_corpora.common import audio_path, not_corpus, read_csv

LABELS_FILE = Path("Labels") / "labels_consensus.csv"
RAW_LABELS = {
    "A": "angry",
    "H": "happy",
    "S": "sad",
    "U": "surprise",
    "F": "fear",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
    "O": "other",
    "X": "other",  # no agreement among annotators
}
GENDERS = {"male": "M", "female": "F"}


class MspPodcast(Corpus):
    name = "msp-podcast"
    raw_labels = RAW_LABELS
    description = "MSP-Podcast from Labels/labels_consensus.csv with its official partitions"

    class Options(BaseOptions):
        partitions: str = Field(
            "", description="Comma-separated Split_Set values to keep, e.g. Train,Development (default: all)."
        )

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        labels = path / LABELS_FILE
        if not labels.is_file():
            raise not_corpus("MSP-Podcast", path, f"{LABELS_FILE} and Audios/")
        audio_dir = next((path / d for d in ("Audios", "Audio") if (path / d).is_dir()), None)
        if audio_dir is None:
            raise not_corpus("MSP-Podcast", path, "an Audios/ folder next to Labels/")
        rows = read_csv(labels, ["FileName", "EmoClass", "SpkrID", "Gender", "Split_Set"])
        wanted = {p.strip().lower() for p in self.options.partitions.split(",") if p.strip()}
        present = sorted({r["Split_Set"] for r in rows})
        unknown = wanted - {p.lower() for p in present}
        if unknown:
            raise SercliError(
                f"MSP-Podcast has no partition {', '.join(sorted(unknown))}; found {', '.join(present)}"
            )
        transcripts = path / "Transcripts"
        for row in rows:
            split = row["Split_Set"]
            if wanted and split.lower() not in wanted:
                continue
            stem = Path(row["FileName"]).stem
            code = row["EmoClass"].upper()
            speaker = row["SpkrID"]
            transcript = transcripts / f"{stem}.txt"
            record = {
                "id": stem,
                "audio": str(audio_path(audio_dir / stem)),
                "emotion": RAW_LABELS.get(code, "other"),
                "raw_label": code,
                "speaker": None if speaker.lower() in ("", "unknown") else speaker,
                "language": "en",
                "gender": GENDERS.get(row["Gender"].lower()),
                "transcript": transcript.read_text(encoding="utf-8", errors="replace").strip()
                if transcript.is_file()
                else None,
                "split": split,
            }
            for column, key in (("EmoAct", "arousal"), ("EmoVal", "valence"), ("EmoDom", "dominance")):
                if row.get(column):
                    record[key] = float(row[column])
            yield record
