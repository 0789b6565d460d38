"""Planning and caching for `sercli synthesize`.

Audio is cached by everything that made it. A file is named ``{id}-{voice}.{key}.wav`` where
``key`` hashes the engine's identity (plugin, the options that change the audio, its version
or rule tables), the text, the emotion and the voice. Rerunning with another pitch, style or
model therefore renders new files instead of reusing audio made with other settings, and
audio already made for the same inputs is reused under any record id, so a paid utterance is
never requested twice. Names come from :func:`sercli.fsutil.safe_name`, so no field of a
record (id, voice) can name a path outside the audio folder.

The audio folder is locked while a run writes into it; temporary files left there by a killed
run are removed under that lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sercli.errors import SercliError
from sercli.fsutil import exclusive_lock, safe_name

KEY_CHARS = 12
_CACHED = re.compile(r"\.([0-9a-f]{%d})\.wav$" % KEY_CHARS)
# what sercli.audio.write_wav, sercli.fsutil and the engines leave behind when killed:
# .NAME.wav.PID.tmp or .NAME.wav.PID.THREAD.tmp
_TMP = re.compile(r"^\..+?\.wav\.(\d+)(?:\.\d+)?\.tmp$")


@dataclass
class Job:
    """One utterance: input record ``rec`` spoken by ``voice``, written as record ``out_id``."""

    rec: dict[str, Any]
    voice: str
    out_id: str
    key: str
    path: Path


def engine_identity(tts) -> dict[str, Any]:
    """What decides an engine's audio besides text, emotion and voice. Engines say so with
    ``identity()``; for one that does not, all of its provenance counts (options included)."""
    identity = getattr(tts, "identity", None)
    return identity() if callable(identity) else tts.provenance()


def cache_key(identity: dict[str, Any], text: str, emotion: str, voice: str) -> str:
    blob = json.dumps({"engine": identity, "text": text, "emotion": emotion, "voice": voice},
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:KEY_CHARS]


def cached_audio(audio_dir: Path) -> dict[str, Path]:
    """{key: file} for the audio already in ``audio_dir``."""
    out: dict[str, Path] = {}
    if audio_dir.is_dir():
        for entry in os.scandir(audio_dir):
            m = _CACHED.search(entry.name)
            if m and not entry.name.startswith(".") and entry.is_file():
                out.setdefault(m.group(1), Path(entry.path))
    return out


def plan(records, tts, chosen: list[str] | None, voices_per_text: int, seed: int,
         audio_dir: Path, engine: str, source: str) -> list[Job]:
    """Every utterance the records ask for, with its cache key and audio file."""
    identity = engine_identity(tts)
    on_disk = cached_audio(audio_dir)
    rng = random.Random(seed)
    jobs: list[Job] = []
    made_from: dict[str, str] = {}
    for rec in records:
        pool = chosen or tts.voices(rec["emotion"])
        if not pool:
            raise SercliError(f"TTS engine {engine!r} has no voice for emotion {rec['emotion']!r}")
        for voice in rng.sample(pool, min(voices_per_text, len(pool))):
            out_id = f"{rec['id']}-{safe_name(voice)}"
            if out_id in made_from:
                first = made_from[out_id]
                what = (f"id {first!r} appears twice" if first == rec["id"]
                        else f"records {first!r} and {rec['id']!r} would both become {out_id!r}")
                raise SercliError(f"{source}: {what}; give each input record its own id")
            made_from[out_id] = rec["id"]
            key = cache_key(identity, rec["text"], rec["emotion"], voice)
            # one file per key: records that say the same thing share the audio rendered once
            path = on_disk.setdefault(key, audio_dir / f"{safe_name(out_id)}.{key}.wav")
            jobs.append(Job(rec, voice, out_id, key, path))
    return jobs


def pending(jobs: list[Job], existing: list[dict[str, Any]], provenance: dict[str, Any],
            output: str | None) -> list[Job]:
    """The jobs whose records ``output`` does not hold yet. A record there with the same id but
    made from other text, emotion or engine options is refused: the file is append-only (paid
    results are never dropped), so it could neither be replaced nor sit next to the new one
    without mixing two settings under one id."""
    by_id = {r.get("id"): r for r in existing}
    todo, clashes = [], _other_plan(jobs, existing)
    for job in jobs:
        old = by_id.get(job.out_id)
        if old is None:
            todo.append(job)
            continue
        why = _difference(old, job, provenance)
        if why:
            clashes.append(f"{job.out_id} ({why})")
    if clashes:
        more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
        raise SercliError(
            f"{output} already holds {clashes[0]}{more}, made differently from what this run "
            "would make; write to another -o file (audio already made for the same inputs is reused)"
        )
    return todo


def _other_plan(jobs: list[Job], existing: list[dict[str, Any]]) -> list[str]:
    """Records in the output made from one of this run's input records, but that this run
    would not make: another --seed, --voices, voice pool or --voices-per-text chose their
    voices, and resuming would leave a file that no single run makes."""
    planned = {job.out_id for job in jobs}
    inputs = {job.rec["id"] for job in jobs}
    return [
        f"{rec.get('id')} (made from {made['from']!r} with other --seed, --voices or --voices-per-text)"
        for rec in existing
        if (made := (rec.get("provenance") or {}).get("synthesize") or {}).get("from") in inputs
        and rec.get("id") not in planned
    ]


def _difference(old: dict[str, Any], job: Job, provenance: dict[str, Any]) -> str | None:
    for field in ("text", "emotion"):
        if old.get(field) != job.rec.get(field):
            return f"other {field}"
    made = (old.get("provenance") or {}).get("synthesize") or {}
    if "key" in made:
        return None if made["key"] == job.key else "other engine or engine options"
    # written by a sercli that kept no key: its whole provenance must match
    same = _without(made, "voice", "key", "from") == _without(provenance, "voice", "key", "from")
    return None if same else "other engine or engine options"


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


@contextmanager
def audio_lock(audio_dir: Path) -> Iterator[None]:
    """Hold the audio folder for one run: two runs sharing it never render (or pay for) the
    same file twice, and what a killed run left there can be cleaned safely."""
    check_audio_dir(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    fh = exclusive_lock(audio_dir / ".lock", f"audio folder {audio_dir}")
    try:
        clean_stale_tmp(audio_dir)
        yield
    finally:
        fh.close()


def check_audio_dir(audio_dir: Path) -> None:
    """Refuse an --audio-dir that is (or lies under) something other than a folder."""
    for folder in (audio_dir, *audio_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise SercliError(f"--audio-dir {audio_dir}: {folder} is a file, not a folder")
            return


def clean_stale_tmp(audio_dir: Path) -> int:
    """Remove temporary files of writers that are gone (call with the folder's lock held)."""
    removed = 0
    for entry in os.scandir(audio_dir):
        m = _TMP.match(entry.name)
        if m and entry.is_file() and not _alive(int(m.group(1))):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    return True
