"""The ``template`` LLM backend: offline, free, deterministic per seed."""

from __future__ import annotations

import random
from typing import Iterator

from pydantic import Field, model_validator

from sercli.api import LLMBackend, Options, same_sentence_key
from sercli_template import grammar

# Give up after this many draws in a row that were duplicates, excluded or out of length
# bounds: by then (almost) every sentence the bank can make has been used.
MAX_MISSES = 5000


_key = same_sentence_key


class TemplateBackend(LLMBackend):
    name = "template"
    description = "Offline sentences from curated phrase banks and a small template grammar (no API)"

    class Options(Options):
        min_words: int = Field(5, ge=1, description="shortest sentence, in words")
        max_words: int = Field(20, ge=1, description="longest sentence, in words")

        @model_validator(mode="after")
        def _bounds(self):
            if self.min_words > self.max_words:
                raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words})")
            return self

    def generate(self, emotion: str, n: int, *, seed: int, exclude: set[str]) -> Iterator[str]:
        """Draw from a stream seeded by (emotion, seed) and skip what ``exclude`` holds.

        The stream does not depend on ``exclude``, so a resumed run (same seed, earlier output
        excluded) continues exactly where the interrupted one stopped.
        """
        bank = grammar.load(emotion)
        rng = random.Random(f"{emotion}:{seed}")
        taken = {_key(s) for s in exclude}
        lo, hi = self.options.min_words, self.options.max_words
        made = misses = 0
        while made < n and misses < MAX_MISSES:
            sentence = bank.sample(rng)
            key = _key(sentence)
            if key in taken or not lo <= len(sentence.split()) <= hi:
                misses += 1
                continue
            taken.add(key)
            made, misses = made + 1, 0
            yield sentence

    def provenance(self) -> dict:
        return {**super().provenance(), "banks": grammar.bank_digest()}

