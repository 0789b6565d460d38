"""`sercli extract`: a backbone turns audio records into features in a feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sercli import plugins as pl
from sercli.base import parse_option_pairs
from sercli.errors import SercliError
from sercli.log import info, progress, warn
from sercli.options import Device, Inputs, Output, PluginOptions
from sercli.records import open_writer, read_many


def extract(
    inputs: Inputs,
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Backbone plugin (see `sercli plugins`).")] = "fbank",
    store: Annotated[Path, typer.Option("--store", "-s", help="Feature store folder.")] = Path("features"),
    layers: Annotated[str, typer.Option("--layers", help="all, last, or comma-separated layer numbers.")] = "all",
    pool: Annotated[str, typer.Option("--pool", help="none (frames), mean or mean+std.")] = "mean",
    store_dtype: Annotated[str, typer.Option("--store-dtype", help="float16 or float32 on disk.")] = "float16",
    batch_seconds: Annotated[float, typer.Option("--batch-seconds", min=0.1, help="Audio per batch (s).")] = 60.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Audio decoding workers.")] = 2,
    device: Device = "cpu",
    option: PluginOptions = None,
    output: Output = None,
) -> None:
    """Extract features for every record with audio; records out point into the store.

    Re-running the same command skips what is already in the store (resumable).
    """
    from sercli.audio import load_audio
    from sercli.extract import ExtractConfig, run_extraction
    from sercli.features import FeatureStore

    if store_dtype not in ("float16", "float32"):
        raise SercliError(f"--store-dtype {store_dtype!r}: expected float16 or float32")
    if pool not in ("none", "mean", "mean+std"):
        raise SercliError(f"--pool {pool!r}: expected none, mean or mean+std")
    records = read_many(inputs, required=("audio",))
    ids = [r["id"] for r in records]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dupes:
        raise SercliError(f"Duplicate record ids in the input: {', '.join(dupes[:5])}")

    model = pl.create("backbone", backbone, parse_option_pairs(option))
    cfg = ExtractConfig(layers, pool, store_dtype, batch_seconds, device, workers)
    fs = FeatureStore(store)
    fs.init(
        {
            "backbone": model.identity(),
            "layers": layers,
            "layer_names": model.layer_names(),
            "pool": pool,
            "level": model.level if pool == "none" else "utterance",
            "dtype": store_dtype,
            "sample_rate": model.sample_rate,
        }
    )
    todo = [(r["id"], r["audio"]) for r in records if r["id"] not in fs]
    if len(todo) < len(records):
        info(f"Resuming: {len(records) - len(todo)} of {len(records)} records already in {store}")
    errors: dict[str, str] = {}

    def on_error(key: str, msg: str) -> None:
        errors[key] = msg
        warn(f"{key}: {msg} (skipped)")

    if todo:
        with progress() as bar:
            task = bar.add_task(f"extract ({backbone})", total=len(todo))
            run_extraction(
                model,
                todo,
                fs,
                cfg,
                load=lambda path: load_audio(path, model.sample_rate),
                on_error=on_error,
                on_progress=lambda n: bar.advance(task, n),
            )

    index = fs.index()
    with open_writer(output) as out:
        for rec in records:
            row = index.get(rec["id"])
            if row is None:
                continue
            rec = dict(rec)
            rec["features"] = {"store": str(Path(store).resolve()), "key": rec["id"], "shape": row["shape"]}
            out.write(rec)
    if errors:
        raise SercliError(f"{len(errors)} of {len(records)} records could not be extracted (see warnings above)")
