"""The engine of `sercli synthesize`: planning, caching, resuming, --dry-run and rendering.

Audio is cached by everything that made it. A file is named ``{id}-{voice}.{key}.wav`` where
``key`` hashes the engine's identity (plugin, the options that change the audio, its version
or rule tables), the text, the emotion and the voice. Rerunning with another pitch, style or
model therefore renders new files instead of reusing audio made with other settings, and
audio already made for the same inputs is reused under any record id, so a paid utterance is
never requested twice. An engine that reads recorded speech (``reads = "audio"``, see
:mod:`sercli.contract.synthesis`) has the source audio's content in the key instead of a text.
Names come from :func:`sercli.core.fsutil.safe_name`, so no field of a
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
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sercli.core.errors import RecordError, SercliError
from sercli.core.fsutil import exclusive_lock, safe_name
from sercli.core.log import info, progress, warn
from sercli.core.records import open_writer, output_lock, read_existing
from sercli.synthesis.inputs import audio_digest, reads

KEY_CHARS = 12
_CACHED = re.compile(r"\.([0-9a-f]{%d})\.wav$" % KEY_CHARS)
# what sercli.core.audio.write_wav, sercli.core.fsutil and the engines leave behind when killed:
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
    derived: bool = False  # remade from the recording ``rec`` (an engine that reads audio)


def engine_identity(tts) -> dict[str, Any]:
    """What decides an engine's audio besides text, emotion and voice. Engines say so with
    ``identity()``; for one that does not, all of its provenance counts (options included)."""
    identity = getattr(tts, "identity", None)
    return identity() if callable(identity) else tts.provenance()


def cache_key(identity: dict[str, Any], text: str | None, emotion: str, voice: str,
              audio: str | None = None) -> str:
    """The key of an utterance's audio; ``audio`` (the digest of the source audio) for an
    engine that reads audio, in place of the text."""
    what = {"text": text} if audio is None else {"audio": audio}
    blob = json.dumps({"engine": identity, **what, "emotion": emotion, "voice": voice},
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


def parse_voices(voices: str | None, tts, engine: str) -> list[str] | None:
    """``--voices a,b`` as a list (None: the engine's pool). An engine whose pool is closed
    (``closed_voices = True``: it can speak no voice but those ``voices()`` lists) has a voice it
    lacks refused here, in one line, before any audio is made; an open pool (espeak takes any
    voice name with variants such as ``en-us+f2``) is the engine's to check."""
    chosen = [v.strip() for v in voices.split(",") if v.strip()] if voices else None
    if chosen and tts.closed_voices:
        pool = list(tts.voices(None))
        unknown = [v for v in chosen if v not in pool]
        if unknown:
            more = getattr(tts, "more_voices", lambda: "")()  # how to get others (a download, an option)
            raise SercliError(f"--voices: TTS engine {engine!r} has no voice {', '.join(map(repr, unknown))} "
                              f"(voices: {', '.join(pool) or 'none'}{'; ' + more if more else ''})")
    return chosen


def plan(records, tts, chosen: list[str] | None, voices_per_text: int, seed: int,
         audio_dir: Path, engine: str, source: str) -> list[Job]:
    """Every utterance the records ask for, with its cache key and audio file."""
    identity = engine_identity(tts)
    on_disk = cached_audio(audio_dir)
    rng = random.Random(seed)
    from_audio = reads(tts) == "audio"
    jobs: list[Job] = []
    made_from: dict[str, str] = {}
    pools = _Pools(tts, engine)
    for rec in records:
        pool = chosen or pools.get(rec["emotion"], rec.get("language"))
        if not pool:
            raise SercliError(f"TTS engine {engine!r} has no voice for emotion {rec['emotion']!r}")
        if from_audio:  # a speaker's voices, the same for each of its utterances, whatever the order
            picked = random.Random(f"{seed}\n{rec['speaker']}").sample(pool, min(voices_per_text, len(pool)))
            digest = audio_digest(rec["audio"])
        else:
            picked = rng.sample(pool, min(voices_per_text, len(pool)))
        for voice in picked:
            out_id = f"{rec['id']}-{safe_name(voice)}"
            if out_id in made_from:
                first = made_from[out_id]
                what = (f"id {first!r} appears twice" if first == rec["id"]
                        else f"records {first!r} and {rec['id']!r} would both become {out_id!r}")
                raise SercliError(f"{source}: {what}; give each input record its own id")
            made_from[out_id] = rec["id"]
            key = (cache_key(identity, None, rec["emotion"], voice, digest) if from_audio
                   else cache_key(identity, rec["text"], rec["emotion"], voice))
            # one file per key: records that say the same thing share the audio rendered once
            path = on_disk.setdefault(key, audio_dir / f"{safe_name(out_id)}.{key}.wav")
            jobs.append(Job(rec, voice, out_id, key, path, from_audio))
    return jobs


class _Pools:
    """Voice pools by (emotion, language). An engine whose ``voices`` takes ``language`` picks
    voices of each record's language (and refuses one it cannot speak); an engine that does
    not is asked by emotion only, with one warning when records name a language."""

    def __init__(self, tts, engine: str):
        import inspect

        self.tts, self.engine, self.cache = tts, engine, {}
        try:
            self.by_language = "language" in inspect.signature(tts.voices).parameters
        except (TypeError, ValueError):
            self.by_language = False
        self.warned = False

    def get(self, emotion: str, language: str | None) -> list[str]:
        key = (emotion, language)
        if key not in self.cache:
            if language and self.by_language:
                self.cache[key] = self.tts.voices(emotion, language=language)
            else:
                if language and language.split("-")[0] != "en" and not self.warned:
                    warn(f"TTS engine {self.engine!r} does not choose voices by language: records in "
                         f"{language!r} are spoken by its usual voices")
                    self.warned = True
                self.cache[key] = self.tts.voices(emotion)
        return self.cache[key]


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
    if "key" in made:  # a derived record's key holds its source audio as well
        return None if made["key"] == job.key else (
            "other source audio, engine or engine options" if job.derived else "other engine or engine options")
    # written by a sercli that kept no key: its whole provenance must match
    same = _without(made, "voice", "key", "from") == _without(provenance, "voice", "key", "from")
    return None if same else "other engine or engine options"


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def run(records, tts, engine: str, chosen: list[str] | None, voices_per_text: int, seed: int,
        audio_dir: Path, output, jobs: int | None, source: str, dry_run: bool = False,
        render_elsewhere=None) -> None:
    """Speak ``records`` into ``audio_dir`` and write a record per utterance to ``output``
    (resuming what it holds), or with ``dry_run`` only say what that would cost. With
    ``render_elsewhere`` (``(tts, engine, todo, provenance, output, jobs, audio_dir) -> (failed,
    usage)``: `sercli.synthesis.cluster.render_on_cluster` for ``--cluster``) the audio is
    rendered by that function; planning, locks and records stay here."""
    prov = tts.provenance()

    def planned(existing):
        todo = pending(
            plan(records, tts, chosen, voices_per_text, seed, audio_dir, engine, source),
            existing, prov, output,
        )
        return todo, len(existing)

    if dry_run:
        todo, _ = planned(read_existing(output))
        cost = {"requests": 0, "characters": 0}
        fresh = {j.key: j for j in todo if not j.path.exists()}
        for job in fresh.values():
            for k, v in tts.estimate(job.rec if reads(tts) == "audio" else job.rec["text"]).items():
                cost[k] = cost.get(k, 0) + int(v)
        info(
            f"Dry run: {len(fresh)} utterances to synthesise with {engine!r} "
            f"({len(todo) - len(fresh)} already on disk): "
            + ", ".join(f"{v} {k}" for k, v in cost.items() if v or k == "requests")
        )
        return

    with output_lock(output), audio_lock(audio_dir):
        todo, done = planned(read_existing(output))
        if done:
            info(f"Resuming: {done} records already in {output}")
        if render_elsewhere is not None:
            failed, usage = render_elsewhere(tts, engine, todo, prov, output, jobs, audio_dir)
        else:
            failed, usage = _render(tts, engine, todo, prov, output, jobs), tts.usage()
    if usage:
        info("Usage: " + json.dumps(usage))
    if failed:
        raise SercliError(f"{failed} of {len(todo)} utterances failed (see warnings above); re-run to retry")


def _render(tts, engine: str, todo: list[Job], prov: dict, output, jobs: int | None) -> int:
    """Render each distinct utterance once, write a record per job; returns the failures."""
    from sercli.core.audio import duration

    groups = by_key(todo)
    stop = threading.Event()  # set by the first fatal error: no later job sends a request

    def run(job: Job):
        if stop.is_set():
            return None
        if not job.path.exists():
            try:
                speak(tts, job.rec, job.voice, job.path)
            except RecordError:
                raise
            except BaseException:
                stop.set()
                raise
        return job

    failed = 0
    with open_writer(output, append=True) as out, progress() as bar:
        task = bar.add_task(f"synthesize ({engine})", total=len(todo))
        with ThreadPoolExecutor(max_workers=jobs or tts.max_concurrency) as pool:
            futures = {pool.submit(run, group[0]): group for group in groups.values()}
            try:
                for fut in as_completed(futures):
                    group = futures[fut]
                    bar.advance(task, len(group))
                    try:
                        if fut.result() is None:  # skipped after a fatal error
                            continue
                    except RecordError as exc:
                        failed += len(group)
                        warn(f"{group[0].rec['id']} ({group[0].voice}): {exc}")
                        continue
                    seconds = round(duration(group[0].path), 4)
                    for job in group:
                        out.write(_record(job, engine, prov, seconds))
            except BaseException:
                # A fatal error (rejected key, unusable voice) or Ctrl-C: start no further paid
                # requests; the ones already running finish and their audio stays for a re-run.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return failed


def speak(tts, rec: dict[str, Any], voice: str, path: Path) -> None:
    """Render one utterance of input record ``rec`` by ``voice`` into ``path``: its text
    spoken, or for an engine that reads audio, its recording remade."""
    if reads(tts) == "audio":
        tts.resynthesize(rec, voice, path)
    else:
        tts.synthesize(rec["text"], rec["emotion"], voice, path)


def by_key(todo: list[Job]) -> dict[str, list[Job]]:
    """Jobs grouped by cache key: each group is one utterance to render, then one record per job."""
    groups: dict[str, list[Job]] = {}
    for job in todo:
        groups.setdefault(job.key, []).append(job)
    return groups


# fields of a recorded source that describe it, not speech remade from it (an audio engine's records)
_SOURCE_ONLY = ("features", "gender", "session", "split", "derived_from")


def _record(job: Job, engine: str, prov: dict, seconds: float) -> dict:
    new = dict(job.rec)
    speaker = f"{engine}:{job.voice}"
    if job.derived:
        for field in _SOURCE_ONLY:
            new.pop(field, None)
        speaker = f"{speaker}@{job.rec['speaker']}"
        new["derived_from"] = {"id": job.rec["id"], "speaker": job.rec["speaker"]}
    new.update(
        id=job.out_id,
        audio=str(job.path.resolve()),
        speaker=speaker,
        voice=job.voice,
        source="synthetic",
        duration=seconds,
    )
    new["provenance"] = {
        **(job.rec.get("provenance") or {}),
        "synthesize": {**prov, "voice": job.voice, "key": job.key, "from": job.rec["id"]},
    }
    return new


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
