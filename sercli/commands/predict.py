"""`sercli predict MODEL AUDIO...`: per-file emotion and class probabilities as JSONL.

Audio goes through the same backbone, options, chunking, layers, pooling and storage precision
as the model's training features (its config's ``features``: the feature store's metadata,
replayed by sercli.features.extract.extract_waveform), so a prediction sees what training saw. Manifest records that already carry features of that kind
are used as they are. A cross-validation run has one model per fold and seed: their probabilities are averaged
(``--ensemble``, the default), or ``--job NAME`` uses one. A model trained with
``--norm speaker`` standardises each speaker's inputs with statistics over that speaker's
inputs given here (records need a speaker, and enough utterances each: sercli.learning.speakernorm).
Probabilities come from sercli.evaluation.evaluate.probabilities, in the model's batches, as `eval`
computes them: `predict RUN FEATURES.jsonl` gives exactly the probabilities `eval` gives.
An input whose features or probabilities are not finite numbers is skipped with the reason.
``--segments`` predicts each speech segment of long recordings instead (sercli.runs.segments).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sercli.core.errors import RecordError, SercliError
from sercli.core.log import warn
from sercli.core.options import Dedupe, Device, Output, PluginOptions


def predict(
    model: Annotated[
        Path, typer.Argument(help="Run folder written by `sercli train` (a CV run: every job averaged, or --job), "
                                  "or a folder written by `sercli export onnx RUN`.")
    ],
    inputs: Annotated[
        list[str], typer.Argument(help="Audio files, or JSONL manifests (records with audio or features), or -.")
    ],
    output: Output = None,
    device: Device = "cpu",
    ensemble: Annotated[
        bool, typer.Option("--ensemble", help="Average the probabilities of every job (folds x seeds) of a CV run (the default without --job).")
    ] = False,
    job: Annotated[
        Optional[str], typer.Option("--job", help="Use one job of a CV run (its folder name, e.g. fold-00-seed-0).")
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Write CSV (id, fields, predicted, p_LABEL...) instead of JSONL; "
                                         "also chosen by an -o name ending in .csv.")
    ] = False,
    dedupe: Dedupe = False,
    segments: Annotated[
        bool, typer.Option("--segments", help="Long recordings: find the speech with a voice-activity detector and "
                                              "predict each segment (records with file, segment, start, end).")
    ] = False,
    vad: Annotated[
        Optional[str], typer.Option("--vad", help="Voice-activity detector for --segments (default: silero if "
                                                  "installed, else energy); its options: -O KEY=VALUE.")
    ] = None,
    option: PluginOptions = None,
    max_segment: Annotated[
        float, typer.Option("--max-segment", help="--segments: longer speech is cut into equal parts of at most "
                                                  "this many seconds for the encoder.")
    ] = 20.0,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="--segments: a timeline figure (PNG) of the segments' "
                                                    "probabilities.")
    ] = None,
) -> None:
    """Print one JSON record per input: predicted emotion and the class probabilities (a run
    trained with --target: ``values``, the predicted value of each target, e.g. arousal). MODEL
    is a run folder, or a folder `sercli export onnx RUN` wrote (the same probabilities).

    With -o FILE.csv (or --csv) the predictions are a CSV table instead: the input's fields
    (id, emotion...), predicted, then one p_LABEL probability column per class.

    Examples:
      sercli predict runs/mix a.wav b.wav
      sercli predict runs/loso feats.jsonl --job fold-00-seed-0 -o preds.csv
      sercli predict runs/mix talk.wav --segments --plot t.png > segs.jsonl
      sercli predict deploy/mix speaker03.jsonl
    """
    import numpy as np

    from sercli.core.targets import targets_of
    from sercli.evaluation.evaluate import Arrays, norm_of
    from sercli.learning.model import probabilities
    from sercli.learning.finetune import is_finetuned
    from sercli.learning.train import load_model
    from sercli.runs.export import is_export

    if not segments and (vad or option or plot):
        raise SercliError("--vad, -O and --plot go with --segments")
    if is_export(model):  # a folder `sercli export NAME RUN` wrote
        if ensemble or job or segments:
            raise SercliError(f"{model} is an exported model (one set of probabilities): --ensemble, --job and --segments are for run folders")
        from sercli.runs.export import predict_exported

        records = _read_inputs(inputs, dedupe)
        todo, probs, failed, labels = predict_exported(model, records)
        return _write(records, todo, probs, failed, labels, output, as_csv)
    jobs = _jobs(model, ensemble, job)
    if segments:
        return _segments(jobs, inputs, vad, option, max_segment, plot, device, output, as_csv)
    models = [load_model(j["dir"]) for j in jobs]
    config = models[0][1]
    for _, c in models[1:]:
        if c["labels"] != config["labels"] or c["features"] != config["features"] or norm_of(c) != norm_of(config) \
                or targets_of(c) != targets_of(config):
            raise SercliError(f"{model}: its fold models use different labels, targets, features or normalisation")
    labels, meta, targets = config["labels"], config["features"], targets_of(config)
    records = _read_inputs(inputs, dedupe)
    speaker_norm = norm_of(config) == "speaker"
    if speaker_norm:  # before any audio is read
        from sercli.learning.speakernorm import speakers_of

        speakers_of(records, "this run standardises each speaker's features (norm: speaker; a run trained with --norm none classifies single files)")
    if is_finetuned(config):  # a fine-tuned encoder is part of the model: it reads the audio
        todo, failed, arrays = _audio(records, meta)
    else:
        feats, failed = _features(records, meta, device)
        head = config["head"]
        for rid, x in feats.items():
            if (x.shape[0], x.shape[2]) != (head.get("num_layers"), head.get("dim")):
                warn(f"{rid}: its features have {x.shape[0]} layers x {x.shape[2]}, the model reads "
                     f"{head.get('num_layers')} x {head.get('dim')} (skipped)")
                failed.add(rid)
        todo = [rec for rec in records if rec["id"] not in failed]
        arrays = [feats[rec["id"]] for rec in todo]
        if speaker_norm and todo:
            from sercli.learning.speakernorm import apply_arrays

            arrays = apply_arrays(todo, arrays, "the inputs that could be read (norm: speaker)")
        arrays = Arrays(arrays)
    # the head on the CPU, in the batches `eval` uses (--device is for the backbone)
    probs = np.mean([probabilities(m, arrays, int(c["train"].get("batch_size", 32)), "cpu") for m, c in models],
                    axis=0) if todo else []
    _write(records, todo, probs, failed, labels, output, as_csv, targets)


def _write(records, todo, probs, failed: set[str], labels: list[str], output, as_csv: bool,
           targets: list[str] | tuple = ()) -> None:
    """The predictions as JSONL or CSV (``targets``: the dimensional targets whose values follow
    the class probabilities in each row); SercliError (exit 1) when some inputs failed."""
    import numpy as np

    from sercli.core.records import open_writer
    from sercli.evaluation.dimensions import rounded_values
    from sercli.evaluation.evaluate import rounded

    rows = []
    for rec, row in zip(todo, probs):
        if not np.isfinite(row).all():
            warn(f"{rec['id']}: the model gives non-finite probabilities for this input (skipped)")
            failed.add(rec["id"])
            continue
        rec = {k: v for k, v in rec.items() if k != "features"}
        c = len(labels)  # class probabilities first, then the dimensional targets' values (--target)
        out = {"predicted": labels[int(row[:c].argmax())], "probabilities": rounded(labels, row[:c])} if c else {}
        if targets:
            out["values"] = rounded_values(targets, row[c:])
        rows.append({**rec, **out})
    if as_csv or (output or "").lower().endswith(".csv"):
        _write_csv(rows, output)
    else:
        with open_writer(output) as out:
            for row in rows:
                out.write(row)
    if failed:
        raise SercliError(f"{len(failed)} of {len(records)} inputs could not be predicted (see warnings above)")


def _segments(jobs, inputs, vad, option, max_segment, plot, device, output, as_csv) -> None:
    """`predict --segments`: every input is a long recording (sercli.runs.segments)."""
    from sercli.contract.common import parse_option_pairs
    from sercli.core.records import open_writer
    from sercli.core.speech import choose
    from sercli.learning.finetune import is_finetuned
    from sercli.learning.train import load_model
    from sercli.runs.segments import check_plot, predict_segments

    check_plot(plot)
    for item in inputs:
        if item == "-" or item.endswith((".jsonl", ".json")):
            raise SercliError(f"--segments reads audio files, not records: {item}")
    pairs = parse_option_pairs(option)
    detector = choose(vad, {k.removeprefix("vad."): v for k, v in pairs.items()})
    models = [load_model(j["dir"]) for j in jobs]
    if is_finetuned(models[0][1]):
        raise SercliError("--segments: a fine-tuned run reads whole files; use a run trained on stored features")
    if as_csv or (output or "").lower().endswith(".csv"):
        rows: list[dict[str, Any]] = []

        class Rows:
            write = rows.append

        try:
            predict_segments(inputs, models, detector, max_segment, device, Rows(), plot)
        finally:
            _write_csv(rows, output)
        return
    with open_writer(output) as out:
        predict_segments(inputs, models, detector, max_segment, device, out, plot)


def _write_csv(rows: list[dict[str, Any]], output: str | None) -> None:
    from sercli.core.fsutil import atomic_write_text
    from sercli.core.records import is_stdout, refuse_input
    from sercli.evaluation.tabular import predictions_csv

    refuse_input(output)
    text = predictions_csv(rows)
    if output is None or is_stdout(output):
        print(text, end="")
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(output), text)


def _jobs(run: Path, ensemble: bool, name: str | None) -> list[dict[str, Any]]:
    """The jobs whose models predict: the one named (--job), else every job (their
    probabilities averaged: the default, which --ensemble states explicitly)."""
    from sercli.core.runfolder import jobs_of, kind

    if kind(run) == "sweep":
        raise SercliError(f"{run} is a sweep: pick one of its runs")
    if ensemble and name:
        raise SercliError("use either --ensemble or --job, not both")
    jobs = jobs_of(run)
    if name:
        chosen = [j for j in jobs if j["name"] == name]
        if not chosen:
            raise SercliError(f"--job {name!r}: {run} has no such job (its jobs: {', '.join(j['name'] for j in jobs)})")
        return chosen
    return jobs  # a cross-validated run: every job's probabilities averaged (as --ensemble says)


def _audio(records, meta: dict[str, Any]):
    """(records to predict, failed ids, their waveforms as Examples) for a fine-tuned model."""
    from sercli.learning.finetune import readable, unlabelled

    todo, unread = readable(records, meta)
    for why in unread.values():
        warn(f"{why} (skipped)")
    return todo, set(unread), unlabelled(todo, meta)


def _read_inputs(inputs: list[str], dedupe: bool = False) -> list[dict[str, Any]]:
    """The records to predict, checked as every command checks its input (sercli.core.inputs):
    an audio file given twice is a duplicate too; emotions, where given, only normalised."""
    from sercli.core.inputs import LabelCheck, check_located, read_located

    located: list[tuple[dict[str, Any], str]] = []
    for item in inputs:
        if item == "-" or item.endswith((".jsonl", ".json")):
            located += read_located(item)
        else:
            path = Path(item)
            if not path.exists():
                raise SercliError(f"{item}: no such file")
            located.append(({"id": str(path), "audio": str(path.resolve())}, "the command line"))
    records = check_located([located], dedupe, LabelCheck(strict=False))[0]
    for rec in records:
        if not rec.get("audio") and not rec.get("features"):
            raise SercliError(f"record {rec.get('id')!r} has neither audio nor features")
    return records


def _features(records, meta: dict[str, Any], device: str):
    """id -> (layers, frames, dim) float32 features as training saw them; and the failed ids."""
    import numpy as np

    from sercli.learning.data import read_features
    from sercli.features.read import store_for

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
        from sercli.core.log import progress

        backbone = _backbone(meta, device)
        with progress() as bar:
            task = bar.add_task("predict: features", total=len(todo))
            for rec in todo:
                try:
                    out[rec["id"]] = _extract(backbone, rec["audio"], meta, device)
                except RecordError as exc:
                    warn(f"{rec['id']}: {exc} (skipped)")
                    failed.add(rec["id"])
                bar.advance(task)
    return out, failed


def _backbone(meta: dict[str, Any], device: str):
    from sercli.core import plugins as pl

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

    from sercli.core.audio import load_audio
    from sercli.features.extract import config_for, extract_waveform

    cfg = config_for(meta, device)
    wav = load_audio(audio, backbone.sample_rate)
    return extract_waveform(backbone, wav, cfg, source=audio).astype(np.float32)
