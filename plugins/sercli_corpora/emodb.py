"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., 2005).

``wav/03a01Wa.wav`` is speaker (03), text code (a01), emotion letter (German initials: W Ärger,
L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral) and version (a, b, ...). Speaker
sex and the ten sentences come from the corpus documentation. Recordings have no sessions: the
speaker is the session.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from sercli.api import Corpus
from sercli_corpora.common import audio_files, match_names, not_corpus

NAME = re.compile(r"(\d\d)([ab]\d\d)([WLEAFTN])([a-z])")
RAW_LABELS = {
    "W": "angry",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happy",
    "T": "sad",
    "N": "neutral",
}
GENDERS = {
    "03": "M",
    "08": "F",
    "09": "F",
    "10": "M",
    "11": "M",
    "12": "M",
    "13": "F",
    "14": "F",
    "15": "M",
    "16": "F",
}
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}


class EmoDB(Corpus):
    name = "emodb"
    raw_labels = RAW_LABELS
    description = "EmoDB / Berlin Emotional Speech (wav/03a01Wa.wav)"

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        audio_dir = path / "wav" if (path / "wav").is_dir() else path
        matched = match_names(audio_files(audio_dir), NAME, "EmoDB") if audio_dir.is_dir() else []
        if not matched:
            raise not_corpus("EmoDB", path, "wav/ with files named like 03a01Wa.wav")
        for f, m in matched:
            speaker, text, letter, _version = m.groups()
            yield {
                "id": f.stem,
                "audio": str(f),
                "emotion": RAW_LABELS[letter],
                "raw_label": letter,
                "speaker": speaker,
                "language": "de",
                "session": speaker,
                "gender": GENDERS.get(speaker),
                "transcript": TEXTS.get(text),
                "text_code": text,
            }
