"""RAVDESS (Livingstone & Russo, 2018): 24 actors, two fixed sentences, labels in the file name.

``Actor_12/03-01-06-01-02-01-12.wav`` is modality (03 audio-only), vocal channel (01 speech,
02 song), emotion, intensity (01 normal, 02 strong), statement, repetition, actor. Odd actors
are male, even actors female. Recordings have no sessions: the actor is the session.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field

from sercli.api import Corpus
from sercli.api import Options as BaseOptions
from sercli_corpora.common import audio_files, match_names, not_corpus

NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
RAW_LABELS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


class Ravdess(Corpus):
    name = "ravdess"
    raw_labels = RAW_LABELS
    description = "RAVDESS audio (Actor_NN/MM-CC-EE-II-SS-RR-AA.wav), speech by default"

    class Options(BaseOptions):
        channel: Literal["speech", "song", "all"] = Field(
            "speech", description="Vocal channel to keep: speech, song or all."
        )

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        matched = match_names(audio_files(path), NAME, "RAVDESS") if path.is_dir() else []
        if not matched:
            raise not_corpus("RAVDESS", path, "Actor_NN folders of files named like 03-01-06-01-02-01-12.wav")
        for f, m in matched:
            _modality, channel, emotion, intensity, statement, _repetition, actor = m.groups()
            channel_name = CHANNELS.get(channel, channel)
            if self.options.channel != "all" and channel_name != self.options.channel:
                continue
            yield {
                "id": f.stem,
                "audio": str(f),
                "emotion": RAW_LABELS.get(emotion, "other"),
                "raw_label": emotion,
                "speaker": actor,
                "language": "en",
                "session": actor,
                "gender": "M" if int(actor) % 2 else "F",
                "transcript": STATEMENTS.get(statement),
                "intensity": INTENSITIES.get(intensity, intensity),
                "channel": channel_name,
            }
