"""`sercli degrade`: noise, reverberation and band limits for synthetic audio (between
synthesize and extract), to bring clean TTS speech closer to recorded speech."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.core.inputs import LabelCheck, read_inputs
from sercli.core.options import Dedupe, Input, Output, Seed


def degrade(
    input: Input = "-",
    audio_dir: Annotated[Path, typer.Option("--audio-dir", "-d", help="Folder for the degraded WAV files.")] = Path(
        "degraded_audio"),
    snr: Annotated[Optional[float], typer.Option("--snr", help="Add white noise at this SNR (dB).")] = None,
    reverb: Annotated[float, typer.Option("--reverb", min=0.0, help="Reverberation: RT60 in seconds of a synthetic "
                                          "room response (0: none).")] = 0.0,
    band: Annotated[Optional[str], typer.Option("--band", help="Band limits LOW-HIGH in Hz (telephone: 300-3400).")] = None,
    suffix: Annotated[str, typer.Option("--suffix", help="Appended to each record id.")] = "-degraded",
    output: Output = None,
    seed: Seed = 0,
    dedupe: Dedupe = False,
) -> None:
    """Write a degraded copy of each record's audio and a record for it (same fields, new id,
    audio and provenance). Seeded per utterance; resumable: records already in -o are kept.

    Examples:
      sercli degrade synth.jsonl -d noisy/ --snr 20 --reverb 0.3 -o noisy.jsonl
      sercli degrade synth.jsonl -d phone/ --band 300-3400 -o phone.jsonl
    """
    from sercli.synthesis import degrade as dg
    from sercli.synthesis.synth import check_audio_dir

    d = dg.Degradation(snr=snr, reverb=reverb, band=dg.parse_band(band), seed=seed)
    records = read_inputs([([input], ("id", "audio"))], dedupe, LabelCheck(strict=False))[0]
    check_audio_dir(audio_dir)
    dg.run(records, d, audio_dir.absolute(), output, suffix)
