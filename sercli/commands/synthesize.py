"""`sercli synthesize`: a TTS engine speaks each sentence in its emotion, over several voices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.core import plugins as pl
from sercli.synthesis import synth
from sercli.synthesis.inputs import check_input
from sercli.contract.common import parse_option_pairs
from sercli.core.cluster import cluster_name
from sercli.core.inputs import LabelCheck, check_located, read_located
from sercli.core.options import Dedupe, Input, Output, PluginOptions, Seed


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
        Optional[int], typer.Option("--jobs", "-j", min=1, help="Concurrent requests (default: the engine's); "
                                    "with --cluster: workers (default: one per CPU of the cluster).")
    ] = None,
    cluster: Annotated[
        Optional[str], typer.Option("--cluster", help="Render on a cluster: ray (a local one) or ray://HEAD:10001. "
                                    "Workers must see --audio-dir at the same path.")
    ] = None,
    seed: Seed = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what the run would cost, then stop.")] = False,
    dedupe: Dedupe = False,
) -> None:
    """Speak text records; write records with audio, speaker (= voice) and source=synthetic.

    An engine that remakes recorded speech (resynth) reads audio records instead (id, audio,
    emotion, speaker: give it the training part only) and writes records that carry
    derived_from (the source's id and speaker), speaker = engine:voice@source-speaker.

    Audio is cached in --audio-dir by engine, options, text, emotion and voice: audio made
    earlier for the same inputs is reused, never requested again; other options make new files.

    Examples:
      sercli synthesize texts.jsonl -d synth/ --voices-per-text 3 -o audio.jsonl
      sercli synthesize texts.jsonl -t openai -d synth/ --dry-run
      sercli synthesize texts.jsonl -t espeak -O prosody=1.5 -d synth/
      sercli synthesize texts.jsonl -d /shared/synth/ --cluster ray://head:10001
      sercli synthesize train.jsonl -t resynth -d resynth/ -o resynth.jsonl
    """
    if cluster:
        cluster_name(cluster)  # a malformed --cluster fails before any work
    located = read_located(input)
    records = check_located([located], dedupe, LabelCheck(strict=False))[0]
    synth.check_audio_dir(audio_dir)
    audio_dir = audio_dir.absolute()  # files land there even if an engine changes folder
    tts = pl.create("tts", engine, parse_option_pairs(option))
    source = "<stdin>" if input == "-" else input
    check_input(records, tts, engine, {id(r): where for r, where in located})  # the kind of record it reads
    chosen = synth.parse_voices(voices, tts, engine)
    render = None
    if cluster:
        from functools import partial

        from sercli.synthesis.cluster import render_on_cluster

        render = partial(render_on_cluster, cluster)
    synth.run(records, tts, engine, chosen, voices_per_text, seed, audio_dir, output, jobs, source, dry_run,
              render)
