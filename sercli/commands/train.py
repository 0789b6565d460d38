"""`sercli train`: a downstream head on real features, plus synthetic ones by a strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli import plugins as pl
from sercli.base import parse_option_pairs
from sercli.errors import SercliError
from sercli.log import info, warn
from sercli.options import Device, Inputs, PluginOptions, Seed


def _split(text: Optional[str]) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def train(
    inputs: Inputs,
    out: Annotated[Path, typer.Option("--out", help="Run folder for the model and reports.")],
    synthetic: Annotated[
        Optional[list[str]], typer.Option("--synthetic", help="Synthetic feature records (repeatable).")
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy plugin.")] = "real-only",
    option: PluginOptions = None,
    test_speakers: Annotated[
        Optional[str], typer.Option("--test-speakers", help="Speakers held out for `sercli eval RUN`.")
    ] = None,
    val_speakers: Annotated[
        Optional[str], typer.Option("--val-speakers", help="Validation speakers (default: a random 20%).")
    ] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.05, max=0.5)] = 0.2,
    classes: Annotated[Optional[str], typer.Option("--classes", help="Emotions to learn (default: all).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="At most this many epochs.")] = 60,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Early-stopping patience.")] = 10,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    hidden: Annotated[int, typer.Option("--hidden", min=1)] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    seed: Seed = 0,
    device: Device = "cpu",
) -> None:
    """Train a head; the run folder then feeds `sercli eval` and `sercli predict`."""
    from sercli.runs import build_split, run_training
    from sercli.train import TrainConfig

    from sercli.records import read_many

    real = read_many(inputs, required=("emotion", "features"))
    synth = read_many(synthetic or [], required=("emotion", "features"))
    strat = pl.create("strategy", strategy, parse_option_pairs(option))
    cfg = TrainConfig(
        hidden=hidden, lr=lr, batch_size=batch_size, max_epochs=epochs, patience=patience,
        seed=seed, device=device,
    )
    split = build_split(
        real, _split(classes), _split(test_speakers), _split(val_speakers), val_fraction, seed
    )
    result = run_training(strat, cfg, split, synth, out, inputs=list(inputs) + list(synthetic or []))
    info(
        f"Trained {strategy!r} on {result['n_train']} real + {result['n_synthetic']} synthetic; "
        f"best validation UA {result['val_UA']:.4f}. Model in {out}"
    )
