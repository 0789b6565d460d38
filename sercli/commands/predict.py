"""`sercli predict MODEL AUDIO...`: per-file emotion and class probabilities as JSONL.

Audio goes through the same backbone, options, chunking, layers, pooling and storage precision
as the model's training features (its config's ``features``: the feature store's metadata,
replayed by sercli.extract.extract_waveform), so a prediction sees what training saw. Manifest records that already carry features of that kind
are used as they are. A cross-validation run averages the probabilities of its fold models.
Probabilities come from sercli.evaluate.probabilities, in the model's batches, as `eval`
computes them: `predict RUN FEATURES.jsonl` gives exactly the probabilities `eval` gives.
An input whose features or probabilities are not finite numbers is skipped with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sercli.errors import RecordError, SercliError
from sercli.log import warn
from sercli.options import Device, Output


def predict(
    model: Annotated[Path, typer.Argument(help="Run folder written by `sercli train` (a CV run: its folds vote).")],
    inputs: Annotated[
        list[str], typer.Argument(help="Audio files, or JSONL manifests (records with audio or features), or -.")
    ],
    output: Output = None,
    device: Device = "cpu",
) -> None:
    """Print one JSON record per input: predicted emotion and the class probabilities."""
    import numpy as np

    from sercli.evaluate import Arrays, probabilities, rounded
    from sercli.records import open_writer
    from sercli.runfolder import jobs_of, kind
    from sercli.train import load_model

    if kind(model) == "sweep":
        raise SercliError(f"{model} is a sweep: pick one of its runs")
    jobs = jobs_of(model)
    models = [load_model(job["dir"]) for job in jobs]
    config = models[0][1]
    for _, c in models[1:]:
        if c["labels"] != config["labels"] or c["features"] != config["features"]:
            raise SercliError(f"{model}: its fold models use different labels or features")
    labels, meta = config["labels"], config["features"]
    records = _read_inputs(inputs)
    feats, failed = _features(records, meta, device)
    head = config["head"]
    for rid, x in feats.items():
        if (x.shape[0], x.shape[2]) != (head.get("num_layers"), head.get("dim")):
            warn(f"{rid}: its features have {x.shape[0]} layers x {x.shape[2]}, the model reads "
                 f"{head.get('num_layers')} x {head.get('dim')} (skipped)")
            failed.add(rid)
    todo = [rec for rec in records if rec["id"] not in failed]
    arrays = Arrays([feats[rec["id"]] for rec in todo])
    # the head on the CPU, in the batches `eval` uses (--device is for the backbone)
    probs = np.mean([probabilities(m, arrays, int(c["train"].get("batch_size", 32)), "cpu") for m, c in models],
                    axis=0) if todo else []
    with open_writer(output) as out:
        for rec, row in zip(todo, probs):
            if not np.isfinite(row).all():
                warn(f"{rec['id']}: the model gives non-finite probabilities for this input (skipped)")
                failed.add(rec["id"])
                continue
            rec = {k: v for k, v in rec.items() if k != "features"}
            out.write({**rec, "predicted": labels[int(row.argmax())], "probabilities": rounded(labels, row)})
    if failed:
        raise SercliError(f"{len(failed)} of {len(records)} inputs could not be predicted (see warnings above)")


def _read_inputs(inputs: list[str]) -> list[dict[str, Any]]:
    from sercli.records import read_records

    records: list[dict[str, Any]] = []
    for item in inputs:
        if item == "-" or item.endswith((".jsonl", ".json")):
            records += read_records(item)
        else:
            path = Path(item)
            if not path.exists():
                raise SercliError(f"{item}: no such file")
            records.append({"id": str(path), "audio": str(path.resolve())})
    for rec in records:
        if not rec.get("audio") and not rec.get("features"):
            raise SercliError(f"record {rec.get('id')!r} has neither audio nor features")
    return records


def _features(records, meta: dict[str, Any], device: str):
    """id -> (layers, frames, dim) float32 features as training saw them; and the failed ids."""
    import numpy as np

    from sercli.data import read_features, store_for

    out: dict[str, np.ndarray] = {}
    todo = []
    failed: set[str] = set()
    for rec in records:
        f = rec.get("features")
        if f and store_for(f["store"]).meta() == meta:
            try:  # a damaged, hand-made or older store: NaN, infinity, no frames, other shapes
                out[rec["id"]] = read_features(rec)
            except SercliError as exc:
                warn(f"{rec['id']}: {exc} (skipped)")
                failed.add(rec["id"])
        elif rec.get("audio"):
            todo.append(rec)
        else:
            raise SercliError(f"record {rec['id']!r}: its features are of another kind than the model's, and it has no audio")
    if todo:
        backbone = _backbone(meta, device)
        for rec in todo:
            try:
                out[rec["id"]] = _extract(backbone, rec["audio"], meta, device)
            except RecordError as exc:
                warn(f"{rec['id']}: {exc} (skipped)")
                failed.add(rec["id"])
    return out, failed


def _backbone(meta: dict[str, Any], device: str):
    from sercli import plugins as pl

    identity = meta["backbone"]
    backbone = pl.create("backbone", identity["plugin"], identity.get("options", {}))
    if backbone.identity() != identity:
        warn(
            f"backbone {identity['plugin']!r} now reports {json.dumps(backbone.identity(), sort_keys=True)}; "
            f"the model was trained on {json.dumps(identity, sort_keys=True)}: predictions may drift"
        )
    backbone.load(device)
    return backbone


def _extract(backbone, audio: str, meta: dict[str, Any], device: str):
    """The features of one file exactly as `sercli extract` stored them for the model's store
    (chunks, layers, pooling and storage precision), then as float32 like training read them."""
    import numpy as np

    from sercli.audio import load_audio
    from sercli.extract import config_for, extract_waveform

    cfg = config_for(meta, device)
    wav = load_audio(audio, backbone.sample_rate)
    return extract_waveform(backbone, wav, cfg, source=audio).astype(np.float32)
