"""Retrying a request to a paid service: the backoff every engine uses (plugins import it
from ``sercli.api``). The loop itself stays with the engine, which alone knows which errors
are worth another attempt (and counts attempts in its ``usage``)."""

from __future__ import annotations

import random
import time

from sercli.core.log import info

MAX_BACKOFF = 30.0  # seconds: the longest pause between two attempts


def backoff_delay(attempt: int, base: float, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0, 1, ...): ``base`` doubled each
    time, at most ``cap``, times a random factor in [0.5, 1] so that the threads of a pool do
    not retry in step."""
    return min(cap, base * 2**attempt) * random.uniform(0.5, 1.0)


def wait_before_retry(what: str, error: str, attempt: int, max_retries: int, wait: float) -> None:
    """Say why and how long (``WHAT: ERROR; retry 1/5 in 0.8 s``, hidden by -q), then sleep."""
    info(f"{what}: {error}; retry {attempt + 1}/{max_retries} in {wait:.1f} s")
    time.sleep(wait)
