"""`sercli extract`: a backbone turns audio records into features in a feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.core import plugins as pl
from sercli.contract.common import parse_option_pairs
from sercli.core.errors import SercliError
from sercli.core.log import info, progress, warn
from sercli.core.inputs import LabelCheck, read_inputs
from sercli.core.options import Dedupe, Device, Inputs, Output, PluginOptions
from sercli.core.records import open_writer


def extract(
    inputs: Inputs,
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Backbone plugin (see `sercli plugins`), e.g. wavlm-base-plus or hf:DIR.")] = "fbank",
    store: Annotated[Path, typer.Option("--store", "-s", help="Feature store folder.")] = Path("features"),
    layers: Annotated[str, typer.Option("--layers", help="all, last, or comma-separated layer numbers.")] = "all",
    pool: Annotated[str, typer.Option("--pool", help="none (frames), mean or mean+std.")] = "mean",
    store_dtype: Annotated[Optional[str], typer.Option("--store-dtype", help="float16 or float32 on disk (default: the backbone's; float16 for neural encoders).")] = None,
    batch_seconds: Annotated[Optional[float], typer.Option("--batch-seconds", min=0.1, help="Padded audio per batch in seconds (default: 60 on a GPU, 20 on CPU).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Worker processes. CPU: each decodes and runs its own copy of the model (default: one per core, at most 4). GPU: audio decoders (default 2). 0: all in this process. With --cluster: workers on the cluster (default: one per GPU with --device cuda, else one per CPU).")] = None,
    device: Device = "cpu",
    devices: Annotated[Optional[str], typer.Option("--devices", help="One model replica per device, each in its own process: cuda:0,cuda:1 or all (every GPU); cpu,cpu runs CPU replicas the same way.")] = None,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="Extract on a cluster: ray (a local one) or ray://HEAD:10001. Workers must see the audio at the same paths; this process writes the store.")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="Autocast the backbone to bf16 or fp16 (for GPUs; default float32).")] = None,
    chunk_seconds: Annotated[float, typer.Option("--chunk-seconds", min=1.0, help="Longer recordings go through in overlapping chunks of this length.")] = 20.0,
    chunk_overlap: Annotated[float, typer.Option("--chunk-overlap", min=0.0, help="Overlap between chunks (s).")] = 2.0,
    shard_mb: Annotated[float, typer.Option("--shard-mb", min=0.001, help="Feature shard size (MB).")] = 256.0,
    option: PluginOptions = None,
    output: Output = None,
    dedupe: Dedupe = False,
) -> None:
    """Extract features for every record with audio; records out point into the store.

    Re-running the same command skips what is already in the store (resumable). Features
    are stored by record id and audio content (sha256): audio that changed is extracted again.

    Examples:
      sercli extract emodb.jsonl -b whisper-tiny.en -s feats/ -o feats.jsonl
      sercli extract audio.jsonl -b hf:microsoft/wavlm-base-plus --layers last
      sercli extract emodb.jsonl -b fbank --pool none -s frames/ -o frames.jsonl
      sercli extract big.jsonl -b wavlm-base-plus --devices all -o f.jsonl
      sercli extract big.jsonl --device cuda --cluster ray://head:10001 -o f.jsonl
    """
    from sercli.core.cluster import cluster_name, device_list
    from sercli.features.extract import (
        COMPUTE_DTYPES, POOLS, STORE_DTYPES, ExtractConfig, check_device, parse_layers, run_extraction,
        start_worker_server, store_meta,
    )
    from sercli.features.store import FeatureStore
    from sercli.core.fingerprint import audio_sha256s, ids_in_store, store_key

    if store_dtype is not None and store_dtype not in STORE_DTYPES:
        raise SercliError(f"--store-dtype {store_dtype!r}: expected float16 or float32")
    if pool not in POOLS:
        raise SercliError(f"--pool {pool!r}: expected none, mean or mean+std")
    if dtype is not None and dtype not in COMPUTE_DTYPES:
        raise SercliError(f"--dtype {dtype!r}: expected bf16 or fp16")
    if chunk_overlap >= chunk_seconds:
        raise SercliError("--chunk-overlap must be shorter than --chunk-seconds")
    device_names = device_list(device, devices, workers)
    if device_names and cluster:
        raise SercliError("--devices and --cluster: choose one (a cluster places the work on its own workers)")
    if cluster:
        from sercli.features.distributed import check_cluster_device

        pl.get_class("cluster", cluster_name(cluster)[0])  # a bad --cluster fails before any work
        check_cluster_device(device)
    else:
        check_device(device if not device_names else device_names[0])
    records = read_inputs([(inputs, ("audio",))], dedupe, LabelCheck(strict=False))[0]

    model = pl.create("backbone", backbone, parse_option_pairs(option))
    parse_layers(layers, model.num_layers, what="--layers")
    if store_dtype is None:
        store_dtype = model.store_dtype
    elif store_dtype == "float16" and model.store_dtype == "float32":
        warn(f"{backbone!r} features can exceed the float16 range (65504); --store-dtype float32 is safer")
    cfg = ExtractConfig(
        layers=layers, pool=pool, store_dtype=store_dtype, batch_seconds=batch_seconds,
        device=device_names[0] if device_names else device, devices=device_names, workers=workers,
        chunk_seconds=chunk_seconds, chunk_overlap=chunk_overlap, compute_dtype=dtype,
        shard_mb=shard_mb,
    )
    if not cluster:
        start_worker_server(model, cfg)  # imports for the workers run while this process reads configs
    fs = FeatureStore(store)
    fs.init(store_meta(model, cfg))
    errors: dict[str, str] = {}

    def on_error(rid: str, msg: str) -> None:
        errors[rid] = msg
        warn(f"{rid}: {msg} (skipped)")

    # The store key of each record: its id and its audio's content (sercli.core.fingerprint).
    keys: dict[str, str] = {}
    for rec, sha in zip(records, audio_sha256s(r["audio"] for r in records)):
        if isinstance(sha, SercliError):
            on_error(rec["id"], str(sha))
        else:
            keys[rec["id"]] = store_key(rec["id"], sha)
    index = fs.index()
    stored = ids_in_store(index)
    todo, unknown = [], 0
    for rec in records:
        key = keys.get(rec["id"])
        if key is None or key in index:
            continue
        todo.append((key, rec["audio"]))
        before = stored.get(rec["id"], set())
        if before - {None}:
            warn(f"audio of {rec['id']} changed since it was extracted into {store}: extracting again")
        elif before:
            unknown += 1
    if unknown:
        warn(f"{unknown} records in {store} were extracted by an older sercli that did not record their audio: "
             "extracting them again")
    if len(todo) < len(keys):
        info(f"Resuming: {len(keys) - len(todo)} of {len(records)} records already in {store}")
    rid = {key: r for r, key in keys.items()}

    if todo and cluster:
        from sercli.core.cluster import open_cluster
        from sercli.features.distributed import run_on_cluster

        with open_cluster(cluster) as engine:
            run_on_cluster(engine, model, todo, fs, cfg, on_error=lambda key, msg: on_error(rid[key], msg),
                           workers=workers, what=f"extract ({backbone})")
    elif todo:
        with progress() as bar:
            task = bar.add_task(f"extract ({backbone})", total=len(todo))
            run_extraction(model, todo, fs, cfg, on_error=lambda key, msg: on_error(rid[key], msg),
                           on_progress=lambda n: bar.advance(task, n))

    index = fs.index()
    with open_writer(output) as out:
        for rec in records:
            key = keys.get(rec["id"])
            row = index.get(key) if key is not None else None
            if row is None:
                continue
            rec = dict(rec)
            rec["features"] = {"store": str(Path(store).resolve()), "key": key, "shape": row["shape"]}
            out.write(rec)
    if errors:
        raise SercliError(f"{len(errors)} of {len(records)} records could not be extracted (see warnings above)")
