"""The OpenAI client (key from the environment only) and the retry loop every request goes through.

The client's own retries are switched off (``max_retries=0``) and done here instead, so that
each attempt is counted in ``usage()``, a quota error (429 ``insufficient_quota``) stops the
run at once instead of being retried, and waits honour ``Retry-After`` / ``retry-after-ms``.
Error messages never carry the key: they are built here from the status and the server's
short message, with the key's value scrubbed out.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from typing import Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from sercli.api import Options, RecordError, SercliError, backoff_delay, wait_before_retry

T = TypeVar("T")

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
MAX_RETRY_AFTER = 120.0  # a server asking for a longer pause is treated as a failure
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ClientOptions(Options):
    """Connection options shared by the ``openai`` LLM backend and TTS engine."""

    model: str = Field(..., description="model name")
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 for vLLM, "
        "http://localhost:11434/v1 for Ollama (default: $OPENAI_BASE_URL, else api.openai.com)",
    )
    max_concurrency: int = Field(4, ge=1, le=64, description="requests in flight at once")
    timeout: float = Field(60.0, gt=0, description="seconds before a request is abandoned and retried")
    max_retries: int = Field(5, ge=0, le=20, description="retries of one request on 429/5xx/timeouts")
    backoff: float = Field(1.0, ge=0, description="first retry delay in seconds (doubles each retry) "
                           "when the server sends no Retry-After")


class Usage:
    """Thread-safe counters for the end-of-run summary."""

    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(names, 0)

    def add(self, **amounts: int) -> None:
        with self._lock:
            for key, value in amounts.items():
                self._counts[key] = self._counts.get(key, 0) + int(value or 0)

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def public_url(url: str | None) -> str | None:
    """The URL without user:password or query (what provenance and messages may show)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str) -> str:
    key = os.environ.get(KEY_ENV, "")
    if len(key) >= 4:
        text = text.replace(key, "***")
    return text


class Connection:
    """One lazily built client per plugin object (the sync client is thread-safe)."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self._client = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return public_url(self.options.base_url or os.environ.get(BASE_URL_ENV)) or "https://api.openai.com/v1"

    def client(self):
        with self._lock:
            if self._client is None:
                import openai

                base = self.options.base_url or os.environ.get(BASE_URL_ENV) or None
                key = os.environ.get(KEY_ENV)
                if not key:
                    if not base:
                        raise SercliError(
                            f"{KEY_ENV} is not set: export it (keys are read from the environment only)"
                        )
                    key = "no-key"  # local servers (vLLM, Ollama, llama.cpp) accept any key
                self._client = openai.OpenAI(
                    api_key=key, base_url=base, timeout=self.options.timeout, max_retries=0
                )
            return self._client

    def call(self, request: Callable[[], T], usage: Usage, what: str, *, bad_request_fatal: bool) -> T:
        """Run ``request`` with retries. Raises SercliError when no request can succeed (auth,
        quota, unknown model, unreachable server) and RecordError when this one gave up."""
        import openai

        opts = self.options
        for attempt in range(opts.max_retries + 1):
            usage.add(requests=1)
            try:
                return request()
            except openai.AuthenticationError:
                raise SercliError(
                    f"OpenAI authentication failed (HTTP 401) at {self.base_url}: "
                    f"{KEY_ENV} was rejected"
                ) from None
            except openai.PermissionDeniedError as exc:
                raise SercliError(
                    f"OpenAI permission denied (HTTP 403) for model {opts.model!r}: {_message(exc)}"
                ) from None
            except openai.NotFoundError as exc:
                raise SercliError(
                    f"Not found (HTTP 404) at {self.base_url}: check the model name {opts.model!r} "
                    f"and base_url ({_message(exc)})"
                ) from None
            except openai.APIStatusError as exc:
                if exc.status_code == 429 and _code(exc) == "insufficient_quota":
                    raise SercliError(
                        "OpenAI quota exceeded (HTTP 429 insufficient_quota): check the plan and billing "
                        "of the key's account"
                    ) from None
                if exc.status_code not in RETRY_STATUS and exc.status_code < 500:
                    text = f"{what}: HTTP {exc.status_code} from {self.base_url}: {_message(exc)}"
                    if bad_request_fatal:
                        raise SercliError(text) from None
                    usage.add(failures=1)
                    raise RecordError(text) from None
                error, wait = f"HTTP {exc.status_code}", _retry_after(exc.response.headers)
            except openai.APITimeoutError:
                error, wait = f"no answer within {opts.timeout:g} s", None
            except openai.APIConnectionError as exc:
                if attempt == opts.max_retries:
                    raise SercliError(
                        f"Cannot connect to {self.base_url}: {redact(str(exc.__cause__ or exc))}"
                    ) from None
                error, wait = "connection failed", None
            if attempt == opts.max_retries:
                break
            if wait is None:
                wait = backoff_delay(attempt, opts.backoff)
            elif wait > MAX_RETRY_AFTER:
                error += f" (server asks to wait {wait:.0f} s)"
                break
            usage.add(retries=1)
            wait_before_retry(what, error, attempt, opts.max_retries, wait)
        usage.add(failures=1)
        raise RecordError(f"{what}: gave up after {attempt + 1} attempts ({error})")


def _message(exc) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    text = str(body.get("message") or exc.message or "")
    return redact(" ".join(text.split()))[:200]


def _code(exc) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    return getattr(exc, "code", None) or body.get("code") or body.get("type")


def _retry_after(headers) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``retry-after`` in seconds or
    as an HTTP date), or None."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
