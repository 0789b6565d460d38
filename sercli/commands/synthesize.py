"""`sercli synthesize`: a TTS engine speaks each sentence in its emotion, over several voices."""

from __future__ import annotations

import json
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli import plugins as pl
from sercli.base import parse_option_pairs
from sercli.errors import RecordError, SercliError
from sercli.log import info, progress, warn
from sercli.options import Input, Output, PluginOptions, Seed
from sercli.records import open_writer, read_existing, read_records


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

    Audio already on disk from an earlier run is reused, never requested again.
    """
    from sercli.audio import duration

    records = read_records(input, required=("text", "emotion"))
    tts = pl.create("tts", engine, parse_option_pairs(option))
    chosen = [v.strip() for v in voices.split(",")] if voices else None

    done = {r["id"] for r in read_existing(output)}
    rng = random.Random(seed)
    jobs_list = []
    for rec in records:
        pool = chosen or tts.voices(rec["emotion"])
        if not pool:
            raise SercliError(f"TTS engine {engine!r} has no voice for emotion {rec['emotion']!r}")
        picked = rng.sample(pool, min(voices_per_text, len(pool)))
        for voice in picked:
            out_id = f"{rec['id']}-{_slug(voice)}"
            if out_id in done:
                continue
            jobs_list.append((rec, voice, out_id, audio_dir / f"{out_id}.wav"))

    todo = [j for j in jobs_list if not j[3].exists()]
    if dry_run:
        cost = {"requests": 0, "characters": 0}
        for rec, *_ in todo:
            for k, v in tts.estimate(rec["text"]).items():
                cost[k] = cost.get(k, 0) + int(v)
        info(
            f"Dry run: {len(todo)} utterances to synthesise with {engine!r} "
            f"({len(jobs_list) - len(todo)} already on disk): "
            + ", ".join(f"{v} {k}" for k, v in cost.items())
        )
        return
    if done:
        info(f"Resuming: {len(done)} records already in {output}")

    audio_dir.mkdir(parents=True, exist_ok=True)
    prov = tts.provenance()
    failed = 0

    stop = threading.Event()  # set by the first fatal error: no later job sends a request

    def run(job):
        rec, voice, out_id, path = job
        if stop.is_set():
            return None
        if not path.exists():
            try:
                tts.synthesize(rec["text"], rec["emotion"], voice, path)
            except RecordError:
                raise
            except BaseException:
                stop.set()
                raise
        return job

    workers = jobs or tts.max_concurrency
    with open_writer(output, append=True) as out, progress() as bar:
        task = bar.add_task(f"synthesize ({engine})", total=len(jobs_list))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run, j): j for j in jobs_list}
            try:
                for fut in as_completed(futures):
                    rec, voice, out_id, path = futures[fut]
                    bar.advance(task)
                    try:
                        if fut.result() is None:  # skipped after a fatal error
                            continue
                    except RecordError as exc:
                        failed += 1
                        warn(f"{rec['id']} ({voice}): {exc}")
                        continue
                    new = dict(rec)
                    new.update(
                        id=out_id,
                        audio=str(path.resolve()),
                        speaker=f"{engine}:{voice}",
                        voice=voice,
                        source="synthetic",
                        duration=round(duration(path), 4),
                    )
                    new["provenance"] = {**rec.get("provenance", {}), "synthesize": {**prov, "voice": voice}}
                    out.write(new)
            except BaseException:
                # A fatal error (rejected key, unusable voice) or Ctrl-C: start no further paid
                # requests; the ones already running finish and their audio stays for a re-run.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    usage = tts.usage()
    if usage:
        info("Usage: " + json.dumps(usage))
    if failed:
        raise SercliError(f"{failed} of {len(jobs_list)} utterances failed (see warnings above); re-run to retry")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)
