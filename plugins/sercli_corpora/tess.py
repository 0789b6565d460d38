"""TESS, the Toronto emotional speech set (Dupuis & Pichora-Fuller, 2010).

Two actresses, an older (OAF) and a younger (YAF) one, say "Say the word _" with 200 target
words in seven emotions: ``OAF_angry/OAF_bar_angry.wav``. Pleasant surprise is ``ps`` in file
names and ``pleasant_surprise`` (or ``Pleasant_surprise``, ``pleasant_surprised``) in folder
names. Recordings have no sessions: the speaker is the session.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from sercli.core import log
from sercli.api import Corpus
from sercli_corpora.common import audio_files, match_names, not_corpus
from sercli.api import canonical

NAME = re.compile(r"([A-Za-z]+)_([A-Za-z]+)_(\w+)")
SPEAKERS = ("OAF", "YAF")


class Tess(Corpus):
    name = "tess"
    description = "TESS Toronto emotional speech set (OAF_angry/OAF_bar_angry.wav)"

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        matched = match_names(audio_files(path), NAME, "TESS") if path.is_dir() else []
        if not matched:
            raise not_corpus("TESS", path, "folders like OAF_angry/ with files named like OAF_bar_angry.wav")
        for f, m in matched:
            prefix, word, raw = m.group(1).upper(), m.group(2).lower(), m.group(3).lower()
            # The folder (OAF_neutral, OAF_Pleasant_surprise) is trusted first: the corpus has
            # typos in file names, e.g. OAF_neutral/OA_bite_neutral.wav.
            folder_speaker, _, folder_label = f.parent.name.partition("_")
            speaker = next((s for s in (folder_speaker.upper(), prefix) if s in SPEAKERS), None)
            if speaker is None:
                log.warn(f"skipped {f.name}: neither it nor its folder names a TESS speaker (OAF, YAF)")
                continue
            yield {
                "id": f.stem,
                "audio": str(f),
                "emotion": canonical(raw) or canonical(folder_label) or "other",
                "raw_label": raw,
                "speaker": speaker,
                "language": "en",
                "session": speaker,
                "gender": "F",
                "transcript": f"Say the word {word}.",
            }
