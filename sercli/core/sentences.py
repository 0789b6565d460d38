"""When two sentences are the same sentence: one definition for every place that asks.

Generated text is deduplicated with it (an LLM backend's ``exclude``, `sercli gen-text`'s
resume), and the leakage guard of training drops a synthetic utterance whose text is the same
sentence as a test transcript.
"""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]")


def same_sentence_key(text: str) -> str:
    """A key equal for the same sentence: Unicode composition (NFKC), case, punctuation and
    spacing do not make a sentence new (``"Don't  GO!"`` and ``"don't go"`` share one)."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())
