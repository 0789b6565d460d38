"""The ``openai`` LLM backend: any chat model behind the OpenAI API or a compatible server."""

from __future__ import annotations

import math
import random
import zlib
from typing import Iterator, Literal

from pydantic import Field, model_validator

from sercli.api import LLMBackend, RecordError, info, same_sentence_key
from sercli_openai import prompts
from sercli_openai.client import ClientOptions, Connection, Usage, public_url

DEFAULT_LABELS = "angry,happy,sad,neutral,fear,disgust,surprise"
_AVG_CHARS_PER_WORD = 5.5


class OpenAILLM(LLMBackend):
    name = "openai"
    description = "OpenAI chat models or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, Azure OpenAI)"

    class Options(ClientOptions):
        model: str = Field("gpt-4o-mini", description="chat model name")
        temperature: float = Field(1.0, ge=0, le=2, description="sampling temperature")
        batch_size: int = Field(10, ge=1, le=50, description="sentences asked for per request")
        min_words: int = Field(5, ge=1, description="shortest sentence kept, in words")
        max_words: int = Field(20, ge=1, description="longest sentence kept, in words")
        language: str = Field("English", description="language of the sentences")
        response_format: Literal["json_schema", "json_object", "none"] = Field(
            "json_schema",
            description="structured output: json_schema (OpenAI, vLLM, llama.cpp), json_object "
            "(older models, Ollama) or none (prompt only)",
        )
        avoid: int = Field(15, ge=0, le=100, description="earlier sentences shown as 'do not repeat'")
        self_check: bool = Field(
            False, description="a second prompt labels each sentence; incongruent ones are dropped"
        )
        check_model: str | None = Field(None, description="model for the self-check (default: model)")
        check_labels: str = Field(DEFAULT_LABELS, description="labels the self-check chooses from")
        check_temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature of the self-check")
        max_requests: int | None = Field(
            None, ge=1,
            description="most generation requests per emotion, retries aside "
            "(default: twice the estimate plus 2, which bounds the cost of duplicates)",
        )

        @model_validator(mode="after")
        def _word_range(self):
            if self.min_words > self.max_words:
                raise ValueError(f"min_words ({self.min_words}) > max_words ({self.max_words})")
            return self

    def __init__(self, name=None, options=None):
        super().__init__(name, options)
        self.conn = Connection(self.options)
        self._usage = Usage(
            "requests", "retries", "failures", "prompt_tokens", "completion_tokens", "malformed",
            "dropped_duplicate", "dropped_length", "dropped_naming", "dropped_self_check",
        )

    def provenance(self):
        out = super().provenance()
        out["options"]["base_url"] = public_url(self.options.base_url)
        return out

    # -- cost --------------------------------------------------------------------------------
    def _batches(self, n: int) -> int:
        return math.ceil(n / self.options.batch_size)

    def estimate(self, emotion: str, n: int) -> dict[str, int]:
        opts = self.options
        batches = self._batches(n)
        messages = prompts.generation_messages(
            emotion, min(n, opts.batch_size), rng=random.Random(0), min_words=opts.min_words,
            max_words=opts.max_words, avoid=["x" * 60] * opts.avoid, language=opts.language,
        )
        prompt_chars = sum(len(m["content"]) for m in messages)
        answer_chars = n * (opts.min_words + opts.max_words) / 2 * _AVG_CHARS_PER_WORD
        requests, chars = batches, batches * prompt_chars + answer_chars
        if opts.self_check:
            requests += batches
            chars += batches * (len(prompts.CHECK_USER) + len(prompts.CHECK_SYSTEM)) + 2 * answer_chars
        return {"requests": requests, "characters": int(chars)}

    def usage(self) -> dict[str, int]:
        return self._usage.totals()

    # -- generation --------------------------------------------------------------------------
    def generate(self, emotion: str, n: int, *, seed: int, exclude: set[str]) -> Iterator[str]:
        """Requests run ``max_concurrency`` at a time; each asks only for what is still missing,
        so a run that goes well makes exactly ceil(n / batch_size) requests."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        opts = self.options
        self.conn.client()  # fail on a missing key before starting threads
        seen = {_key(s) for s in exclude}
        made: list[str] = []
        rng = random.Random(f"{seed}-{emotion}")
        avoid_pool = rng.sample(sorted(exclude), min(len(exclude), opts.avoid))
        budget = opts.max_requests or 2 * self._batches(n) + 2
        started, failures = 0, []
        pending: dict = {}
        pool = ThreadPoolExecutor(max_workers=opts.max_concurrency, thread_name_prefix="openai-llm")
        try:
            while len(made) < n:
                while len(pending) < opts.max_concurrency and started < budget:
                    k = min(opts.batch_size, n - len(made) - sum(pending.values()))
                    if k <= 0:
                        break
                    avoid = (made[-opts.avoid:] + avoid_pool)[: opts.avoid] if opts.avoid else []
                    fut = pool.submit(self._batch, emotion, k, _seed(seed, emotion, started), avoid)
                    pending[fut] = k
                    started += 1
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    del pending[fut]
                    try:
                        sentences = fut.result()
                    except RecordError as exc:
                        failures.append(str(exc))
                        continue
                    for text in sentences:
                        key = _key(text)
                        if key in seen:
                            self._usage.add(dropped_duplicate=1)
                            continue
                        seen.add(key)
                        made.append(text)
                        yield text
                        if len(made) >= n:
                            return
        finally:
            # Stop paying: requests not yet started are cancelled (fatal error, or the caller
            # stopped reading); those already on the wire finish in the background.
            pool.shutdown(wait=False, cancel_futures=True)
        if failures:
            raise RecordError(
                f"{len(failures)} request(s) failed for {emotion!r}, {n - len(made)} sentences missing; "
                f"last error: {failures[-1]}"
            )

    def _batch(self, emotion: str, k: int, seed: int, avoid: list[str]) -> list[str]:
        """One generation request (retried on a malformed reply), filtered and optionally checked."""
        opts = self.options
        messages = prompts.generation_messages(
            emotion, k, rng=random.Random(seed), min_words=opts.min_words, max_words=opts.max_words,
            avoid=avoid, language=opts.language,
        )
        raw = self._ask(messages, prompts.SENTENCES_SCHEMA, opts.model, seed,
                        prompts.parse_sentences, f"gen-text {emotion}")
        kept = []
        for text in raw:
            words = len(text.split())
            if not opts.min_words <= words <= opts.max_words:
                self._usage.add(dropped_length=1)
            elif prompts.names_emotion(text, emotion):
                self._usage.add(dropped_naming=1)
            else:
                kept.append(text)
        if opts.self_check and kept:
            kept = self._check(emotion, kept, seed)
        return kept

    def _check(self, emotion: str, sentences: list[str], seed: int) -> list[str]:
        opts = self.options
        labels = [s.strip() for s in opts.check_labels.split(",") if s.strip()]
        target = prompts.canonical(emotion)
        if target not in {prompts.canonical(x) for x in labels}:
            labels.append(emotion)
        got = self._ask(
            prompts.check_messages(emotion, sentences, labels), prompts.LABELS_SCHEMA,
            opts.check_model or opts.model, seed, lambda c: prompts.parse_labels(c, len(sentences)),
            f"self-check {emotion}", temperature=opts.check_temperature,
        )
        kept = [s for s, label in zip(sentences, got) if label == target]
        self._usage.add(dropped_self_check=len(sentences) - len(kept))
        return kept

    def _ask(self, messages, schema, model, seed, parse, what, temperature=None):
        """A chat request whose reply is parsed by ``parse``; a malformed reply is asked again
        (it counts as a retry), at most ``max_retries`` times."""
        opts = self.options
        if opts.response_format == "json_schema":
            fmt = {"response_format": {"type": "json_schema", "json_schema": schema}}
        elif opts.response_format == "json_object":
            fmt = {"response_format": {"type": "json_object"}}
        else:
            fmt = {}
        client = self.conn.client()
        for attempt in range(opts.max_retries + 1):
            reply = self.conn.call(
                lambda: client.chat.completions.create(
                    model=model, messages=messages, seed=seed + attempt,
                    temperature=opts.temperature if temperature is None else temperature, **fmt,
                ),
                self._usage, what, bad_request_fatal=True,
            )
            if reply.usage is not None:
                self._usage.add(prompt_tokens=reply.usage.prompt_tokens or 0,
                                completion_tokens=reply.usage.completion_tokens or 0)
            content = reply.choices[0].message.content if reply.choices else None
            try:
                return parse(content)
            except prompts.Malformed as exc:
                self._usage.add(malformed=1)
                problem = str(exc)
                if attempt < opts.max_retries:
                    self._usage.add(retries=1)
                    info(f"{what}: malformed reply ({problem}); asking again")
        self._usage.add(failures=1)
        raise RecordError(f"{what}: malformed reply {opts.max_retries + 1} times ({problem})")


# Dedup key: case, spacing and punctuation do not make a sentence new.
_key = same_sentence_key


def _seed(seed: int, emotion: str, index: int) -> int:
    return zlib.crc32(f"{seed}/{emotion}/{index}".encode()) & 0x7FFFFFFF
