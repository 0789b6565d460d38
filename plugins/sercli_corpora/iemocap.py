"""IEMOCAP (Busso et al., 2008): five sessions of dyadic improvised and scripted dialogues.

Layout read here::

    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt      consensus label per turn
    Session1/dialog/transcriptions/Ses01F_impro01.txt     transcript per turn
    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav

An evaluation file holds one block per turn: a header line
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`` (the
consensus category and mean valence, activation, dominance), then one line per evaluator
(``C-E1:``, ``A-E3:`` ...), which the consensus already summarises.

The default is the setting most papers report (and Ma et al. use): angry, happy, neutral and
sad with excited merged into happy, 5531 utterances, 1085/1023/1151/1031/1241 per session.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Iterator

from pydantic import Field

from sercli.api import Corpus
from sercli.api import Options as BaseOptions
from sercli_corpora.common import audio_path, not_corpus

RAW_LABELS = {
    "ang": "angry",
    "hap": "happy",
    "exc": "excited",
    "neu": "neutral",
    "sad": "sad",
    "fru": "frustrated",
    "sur": "surprise",
    "fea": "fear",
    "dis": "disgust",
    "oth": "other",
    "xxx": "other",  # evaluators did not agree on a category
}

HEADER = re.compile(
    r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\d\d[FM]_\S+)\s+(\w+)\s+\[([^\]]*)\]"
)
TRANSCRIPT = re.compile(r"^(Ses\d\d[FM]_\S+)\s+\[[^\]]*\]:\s*(.*)$")


class Iemocap(Corpus):
    name = "iemocap"
    raw_labels = RAW_LABELS
    description = "IEMOCAP Session1-5 (default: angry/happy/neutral/sad, excited merged into happy)"
    default_classes: ClassVar[tuple[str, ...]] = ("angry", "happy", "neutral", "sad")
    default_map: ClassVar[dict[str, str]] = {"excited": "happy"}

    class Options(BaseOptions):
        improvised_only: bool = Field(False, description="Only the improvised dialogues (no scripts).")

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        sessions = sorted(
            p for p in path.glob("Session*") if (p / "dialog" / "EmoEvaluation").is_dir()
        )
        if not sessions:
            raise not_corpus("IEMOCAP", path, "Session1..Session5 folders with dialog/EmoEvaluation/")
        for session in sessions:
            evaluations = sorted(
                f
                for f in (session / "dialog" / "EmoEvaluation").glob("Ses*.txt")
                if not f.name.startswith("._")
            )
            for evaluation in evaluations:
                dialog = evaluation.stem
                improvised = "_impro" in dialog
                if self.options.improvised_only and not improvised:
                    continue
                transcripts = _transcripts(session / "dialog" / "transcriptions" / f"{dialog}.txt")
                for turn, raw, vad in _turns(evaluation):
                    gender = turn.rsplit("_", 1)[-1][0]  # F000 / M012: who speaks this turn
                    record = {
                        "id": turn,
                        "audio": str(audio_path(session / "sentences" / "wav" / dialog / turn)),
                        "emotion": RAW_LABELS.get(raw, "other"),
                        "raw_label": raw,
                        "speaker": f"{turn[:5]}_{gender}",
                        "language": "en",
                        "session": turn[:5],
                        "gender": gender,
                        "transcript": transcripts.get(turn),
                        "improvised": improvised,
                    }
                    record.update(vad)
                    yield record


def _turns(path: Path) -> Iterator[tuple[str, str, dict[str, float]]]:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = HEADER.match(line)
        if not m:
            continue  # evaluator lines and the file's column header
        values = [float(v) for v in m.group(5).split(",") if v.strip()]
        vad = dict(zip(("valence", "arousal", "dominance"), values)) if len(values) == 3 else {}
        yield m.group(3), m.group(4).lower(), vad


def _transcripts(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = TRANSCRIPT.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out
