"""`sercli synthesize`: a TTS engine speaks each sentence in its emotion, over several voices."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli import plugins as pl
from sercli import synth
from sercli.base import parse_option_pairs
from sercli.errors import RecordError, SercliError
from sercli.log import info, progress, warn
from sercli.options import Input, Output, PluginOptions, Seed
from sercli.records import open_writer, output_lock, read_existing, read_records


def synthesize(
    input: Input = "-",
    engine: Annotated[str, typer.Option("--engine", "-t", help="TTS engine plugin.")] = "espeak",
    audio_dir: Annotated[
        Path, typer.Option("--audio-dir", "-d", help="Folder for the WAV files.")
    ] = Path("synth_audio"),
    voices: Annotated[
        Optional[str], typer.Option("--voices", help="Comma-separated voices (default: the engine's pool).")
    ] = None,
    voices_per_text: Annotated[
        int, typer.Option("--voices-per-text", min=1, help="Speak each sentence with this many voices.")
    ] = 1,
    option: PluginOptions = None,
    output: Output = None,
    jobs: Annotated[
        Optional[int], typer.Option("--jobs", "-j", min=1, help="Concurrent requests (default: the engine's).")
    ] = None,
    seed: Seed = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what the run would cost, then stop.")] = False,
) -> None:
    """Speak text records; write records with audio, speaker (= voice) and source=synthetic.

    Audio is cached in --audio-dir by engine, options, text, emotion and voice: audio made
    earlier for the same inputs is reused, never requested again; other options make new files.
    """
    records = read_records(input, required=("text", "emotion"))
    synth.check_audio_dir(audio_dir)
    audio_dir = audio_dir.absolute()  # files land there even if an engine changes folder
    tts = pl.create("tts", engine, parse_option_pairs(option))
    chosen = [v.strip() for v in voices.split(",") if v.strip()] if voices else None
    prov = tts.provenance()
    source = "<stdin>" if input == "-" else input

    def planned(existing):
        todo = synth.pending(
            synth.plan(records, tts, chosen, voices_per_text, seed, audio_dir, engine, source),
            existing, prov, output,
        )
        return todo, len(existing)

    if dry_run:
        todo, _ = planned(read_existing(output))
        cost = {"requests": 0, "characters": 0}
        fresh = {j.key: j for j in todo if not j.path.exists()}
        for job in fresh.values():
            for k, v in tts.estimate(job.rec["text"]).items():
                cost[k] = cost.get(k, 0) + int(v)
        info(
            f"Dry run: {len(fresh)} utterances to synthesise with {engine!r} "
            f"({len(todo) - len(fresh)} already on disk): "
            + ", ".join(f"{v} {k}" for k, v in cost.items())
        )
        return

    with output_lock(output), synth.audio_lock(audio_dir):
        todo, done = planned(read_existing(output))
        if done:
            info(f"Resuming: {done} records already in {output}")
        failed = _render(tts, engine, todo, prov, output, jobs)
    usage = tts.usage()
    if usage:
        info("Usage: " + json.dumps(usage))
    if failed:
        raise SercliError(f"{failed} of {len(todo)} utterances failed (see warnings above); re-run to retry")


def _render(tts, engine: str, todo: list[synth.Job], prov: dict, output, jobs: int | None) -> int:
    """Render each distinct utterance once, write a record per job; returns the failures."""
    from sercli.audio import duration

    groups: dict[str, list[synth.Job]] = {}
    for job in todo:
        groups.setdefault(job.key, []).append(job)
    stop = threading.Event()  # set by the first fatal error: no later job sends a request

    def run(job: synth.Job):
        if stop.is_set():
            return None
        if not job.path.exists():
            try:
                tts.synthesize(job.rec["text"], job.rec["emotion"], job.voice, job.path)
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


def _record(job: synth.Job, engine: str, prov: dict, seconds: float) -> dict:
    new = dict(job.rec)
    new.update(
        id=job.out_id,
        audio=str(job.path.resolve()),
        speaker=f"{engine}:{job.voice}",
        voice=job.voice,
        source="synthetic",
        duration=seconds,
    )
    new["provenance"] = {
        **(job.rec.get("provenance") or {}),
        "synthesize": {**prov, "voice": job.voice, "key": job.key, "from": job.rec["id"]},
    }
    return new
