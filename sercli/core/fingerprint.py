"""Audio identity for the feature store: features are keyed by what made them.

A stored feature's key is ``"{id}#{sha[:16]}"``: the record id plus the first 64 bits of the
sha256 of the audio file's bytes. Keyed so, a store never hands back features of audio that
has changed since (a re-recorded or re-synthesised file under the same id gets a new key, and
is extracted again), and two manifests that reuse an id for different audio never overwrite
each other's features: both stay in the store, each found by its own audio.

Why the content and not the file's size and mtime: mtimes change on every copy, ``touch`` or
checkout (a cache keyed by them misses for nothing) and are kept by ``cp -p`` and ``rsync -a``
even when the bytes differ (a cache keyed by them hands back stale features). sha256 runs at
about 1 GB/s on a core, threads overlap it with the disk, and extraction decodes each file
anyway: hashing costs a small fraction of the cheapest backbone.
"""

from __future__ import annotations

import re
from typing import Iterable

from sercli.core.errors import RecordError

SEP = "#"
DIGITS = 16  # hex digits of the sha256 in a store key
_FP = re.compile(rf"[0-9a-f]{{{DIGITS}}}")


def audio_sha256(path: str) -> str:
    """sha256 (hex) of the bytes of ``path``; RecordError if it cannot be read."""
    from sercli.core.fsutil import file_sha256
    from sercli.core.guards import file_error

    try:
        return file_sha256(path)
    except OSError as exc:
        raise file_error(path, exc) from None


def audio_sha256s(paths: Iterable[str], threads: int = 8) -> list[str | RecordError]:
    """``audio_sha256`` of each path (or its RecordError), in order. hashlib releases the GIL
    on large updates, so threads hash on several cores while others wait on the disk."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: str) -> str | RecordError:
        try:
            return audio_sha256(path)
        except RecordError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, paths))


def store_key(record_id: str, sha256: str) -> str:
    return f"{record_id}{SEP}{sha256[:DIGITS]}"


def split_key(key: str) -> tuple[str, str | None]:
    """(record id, audio fingerprint) of a store key; (key, None) for a key written by a
    sercli that did not key features by their audio (the bare record id)."""
    rid, sep, fp = key.rpartition(SEP)
    if sep and _FP.fullmatch(fp):
        return rid, fp
    return key, None


def ids_in_store(keys: Iterable[str]) -> dict[str, set[str | None]]:
    """record id -> the fingerprints (None: unknown, an older store's bare id) stored for it."""
    out: dict[str, set[str | None]] = {}
    for key in keys:
        rid, fp = split_key(key)
        out.setdefault(rid, set()).add(fp)
    return out
