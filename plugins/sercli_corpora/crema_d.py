"""CREMA-D (Cao et al., 2014): 91 actors, 12 sentences, labels in the file name.

``AudioWAV/1001_DFA_ANG_XX.wav`` is actor, sentence code, emotion, intensity level (LO, MD, HI,
XX unspecified). ``VideoDemographics.csv`` (ActorID,Age,Sex,Race,Ethnicity) gives each actor's
sex. Recordings have no sessions: the actor is the session.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from sercli.core import log
from sercli.api import Corpus
from sercli_corpora.common import audio_files, match_names, not_corpus, read_csv

NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")
RAW_LABELS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
DEMOGRAPHICS = "VideoDemographics.csv"
GENDERS = {"male": "M", "female": "F"}


class CremaD(Corpus):
    name = "crema-d"
    raw_labels = RAW_LABELS
    description = "CREMA-D (AudioWAV/1001_DFA_ANG_XX.wav, sex from VideoDemographics.csv)"

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        audio_dir = path / "AudioWAV" if (path / "AudioWAV").is_dir() else path
        matched = match_names(audio_files(audio_dir), NAME, "CREMA-D") if audio_dir.is_dir() else []
        if not matched:
            raise not_corpus("CREMA-D", path, "AudioWAV/ with files named like 1001_DFA_ANG_XX.wav")
        genders = _genders(audio_dir)
        for f, m in matched:
            actor, sentence, emotion, level = m.groups()
            yield {
                "id": f.stem,
                "audio": str(f),
                "emotion": RAW_LABELS.get(emotion, "other"),
                "raw_label": emotion,
                "speaker": actor,
                "language": "en",
                "session": actor,
                "gender": genders.get(actor),
                "transcript": SENTENCES.get(sentence),
                "intensity": LEVELS.get(level, level),
            }


def _genders(audio_dir: Path) -> dict[str, str]:
    """Actor -> M/F from VideoDemographics.csv, looked for beside or above the audio folder."""
    for folder in (audio_dir, audio_dir.parent):
        table = folder / DEMOGRAPHICS
        if table.is_file():
            rows = read_csv(table, ["ActorID", "Sex"])
            return {r["ActorID"]: GENDERS[r["Sex"].lower()] for r in rows if r["Sex"].lower() in GENDERS}
    log.warn(f"{DEMOGRAPHICS} not found next to {audio_dir}: gender is left out")
    return {}
