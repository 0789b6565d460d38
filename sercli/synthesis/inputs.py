"""What `sercli synthesize` reads: text records for a text engine, recorded speech for an engine
that remakes it (``reads = "audio"``, :mod:`sercli.contract.synthesis`), checked before any audio
is made; and the digest of a source recording, part of the cache key of what is made from it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sercli.core.errors import SercliError


def reads(tts) -> str:
    """What ``tts`` reads: "text" (records id, emotion, text) or "audio" (recorded speech)."""
    return getattr(tts, "reads", "text")


def check_input(records: list[dict[str, Any]], tts, engine: str, where_read: dict[int, str]) -> None:
    """Refuse, in one line and before any audio is made, records of the kind ``tts`` does not
    read: recorded speech given to a text engine, text given to an engine that remakes
    recorded speech, or a record without a field its engine needs. ``where_read``: id(record) ->
    "FILE line N", for the message."""
    from sercli.contract.synthesis import READS

    kind = reads(tts)
    needed = READS.get(kind)
    if needed is None:
        raise SercliError(f"TTS engine {engine!r} reads {kind!r}, which sercli does not know (text or audio)")
    for rec in records:
        missing = [f for f in needed if rec.get(f) in (None, "")]
        if not missing:
            continue
        line = where_read.get(id(rec), "input")
        where = f"{line}: record {rec.get('id')!r}"
        if kind == "text" and "text" in missing and rec.get("audio"):
            raise SercliError(
                f"{where} is recorded speech (audio, no text); TTS engine {engine!r} speaks text records "
                "(id, emotion, text): give audio records to an engine that reads audio (--engine resynth)")
        if kind == "audio" and "audio" in missing and rec.get("text"):
            raise SercliError(
                f"{where} is a text record (text, no audio); TTS engine {engine!r} remakes recorded speech: "
                "give it audio records (id, audio, emotion, speaker), or text records to a text engine (--engine espeak)")
        raise SercliError(f"{line}: missing {', '.join(map(repr, missing))} (record {rec.get('id')!r}; "
                          f"TTS engine {engine!r} reads {kind} records: {', '.join(('id',) + needed)})")


def audio_digest(path: str | Path) -> str:
    """The hash of an audio file's bytes (what an audio engine's output depends on)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise SercliError(f"cannot read audio {path}: {exc.strerror or exc}") from None
    return h.hexdigest()
