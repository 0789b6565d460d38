"""LLM backend `example`: sentences built from a short phrase list, offline and repeatable."""

from __future__ import annotations

import random
from typing import Iterator

from pydantic import Field

from sercli.api import LLMBackend, Options

OPENINGS = ("Honestly,", "Right now", "Today", "After all that", "This morning", "Somehow")
FEELINGS = {
    "angry": ("I am furious about the {thing}", "the {thing} makes me so mad"),
    "happy": ("I am thrilled about the {thing}", "the {thing} made my day"),
    "neutral": ("I looked at the {thing}", "the {thing} is on the table"),
    "sad": ("I miss the {thing} so much", "the {thing} makes me feel low"),
}
THINGS = ("letter", "garden", "old car", "meeting", "train", "concert", "kitchen", "phone call")


class PhraseList(LLMBackend):
    name = "example"
    description = "Sentences from a small phrase list (example plugin)."

    class Options(Options):
        punctuation: str = Field(".", max_length=1, description="How each sentence ends.")

    def generate(self, emotion: str, n: int, *, seed: int, exclude: set[str]) -> Iterator[str]:
        rng = random.Random(f"{seed}:{emotion}")
        patterns = FEELINGS.get(emotion, ("I feel " + emotion + " about the {thing}",))
        combos = [(o, p, t) for o in OPENINGS for p in patterns for t in THINGS]
        rng.shuffle(combos)
        made = 0
        for opening, pattern, thing in combos:
            if made >= n:
                return
            text = f"{opening} {pattern.format(thing=thing)}{self.options.punctuation}"
            if " ".join(text.lower().split()) in exclude:
                continue
            made += 1
            yield text

    def estimate(self, emotion: str, n: int) -> dict[str, int]:
        return {"requests": 0, "characters": 0}  # offline: nothing to pay
