"""The LLM backend family (`sercli gen-text --backend NAME`, hook ``register_llm_backends``)."""

from __future__ import annotations

from typing import Iterator

from sercli.contract.common import Plugin


class LLMBackend(Plugin):
    """Writes sentences a person would say in a given emotion."""

    def generate(self, emotion: str, n: int, *, seed: int, exclude: set[str]) -> Iterator[str]:
        """Yield up to ``n`` new sentences for ``emotion`` (a canonical name, see
        ``sercli.api.EMOTIONS``), none of them the same sentence as one in ``exclude``
        (compare with ``sercli.api.same_sentence_key``); the same ``seed`` should give the
        same sentences where the backend can.

        Sentences are yielded as soon as they exist so the caller can persist them at once.
        """
        raise NotImplementedError

    def check(self, emotions: list[str]) -> None:
        """SercliError (one line, with the fix) when the backend cannot write one of
        ``emotions``; called once with every emotion asked for, before any sentence is made
        (default: any emotion can be written)."""

    def estimate(self, emotion: str, n: int) -> dict[str, int]:
        """Requests and characters a call for ``n`` sentences would cost (for --dry-run)."""
        return {"requests": 0, "characters": 0}

    def usage(self) -> dict[str, int]:
        """Totals spent so far (requests, tokens...) for the end-of-run summary."""
        return {}
