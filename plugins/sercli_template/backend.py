"""The ``template`` LLM backend: offline, free, deterministic per seed."""

from __future__ import annotations

import random
from typing import Iterator

from pydantic import Field, field_validator, model_validator

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
        language: str = Field("en", description="language of the sentences (en, de, it; gen-text --language)")

        @model_validator(mode="after")
        def _bounds(self):
            if self.min_words > self.max_words:
                raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words})")
            return self

        @field_validator("language")
        @classmethod
        def _known(cls, value: str) -> str:
            value = value.strip().lower().replace("_", "-")
            if value not in grammar.languages():  # de-DE, de-AT: the banks are written for de
                value = value.split("-")[0]
            if value not in grammar.languages():
                raise ValueError(f"no phrase banks in {value!r} (known: {', '.join(grammar.languages())})")
            return value

    def check(self, emotions: list[str]) -> None:
        for emotion in emotions:  # the bank's own message names the emotions it has
            grammar.load(emotion, self.options.language)

    def generate(self, emotion: str, n: int, *, seed: int, exclude: set[str]) -> Iterator[str]:
        """Draw from a stream seeded by (emotion, seed) and skip what ``exclude`` holds.

        The stream does not depend on ``exclude``, so a resumed run (same seed, earlier output
        excluded) continues exactly where the interrupted one stopped.
        """
        language = self.options.language
        bank = grammar.load(emotion, language)
        # English keeps the stream it always had; another language draws its own
        rng = random.Random(f"{emotion}:{seed}" if language == "en" else f"{language}:{emotion}:{seed}")
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

    def language(self) -> str:
        """The language of the sentences (a BCP-47 code): gen-text writes it into each record."""
        return self.options.language

    def provenance(self) -> dict:
        return {**super().provenance(), "banks": grammar.bank_digest(self.options.language)}

