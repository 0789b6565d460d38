"""A run written by a run exporter (`sercli export NAME RUN -o DIR`), and read back
(`sercli predict DIR AUDIO...`).

Export: the run as a ``DeployableRun`` (sercli.runs.deployable), written by the exporter into a
temporary sibling of DIR together with ``manifest.json``; the folder is then loaded back as a
reader would load it and its probabilities on five test clips (one speaker) compared with the
run's own; only when they agree to ``TOLERANCE`` is it renamed into place
(sercli.core.runfolder.staged), so a failed export leaves nothing.

Prediction with an exported folder follows `predict RUN` step by step: audio at the manifest's
sample rate, the exported features, the speaker's statistics over the given clips of that
speaker when the run is speaker-normalised (sercli.learning.speakernorm: the same code, the
same minimum of utterances), else zeros and ones, then the exported head.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sercli.contract.export import MANIFEST
from sercli.core.errors import RecordError, SercliError
from sercli.core.log import info, warn

TOLERANCE = 1e-4  # the most an exported probability may differ from the run's


def is_export(folder: Path) -> bool:
    """Whether ``folder`` is what `sercli export` wrote for a run (a manifest naming its format)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        return "format" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def export_run(fmt: str, run: Path, out: Path, options: dict[str, Any], job: str | None = None) -> dict[str, Any]:
    """Write ``run`` as ``fmt`` into ``out`` (replacing an earlier export there); the manifest."""
    from sercli import __version__
    from sercli.core import plugins as pl
    from sercli.core.runfolder import run_above, staged, write_json
    from sercli.runs.deployable import deployable, load_run, run_probabilities

    exporter = pl.create("exporter", fmt, options)
    if run_above(out) is not None or Path(out).resolve() == Path(run).resolve():
        raise SercliError(f"-o {out}: inside the run folder {run_above(out) or run}; choose a folder outside it")
    loaded = load_run(run, job)
    try:
        model = deployable(loaded)
    except SercliError as exc:
        raise SercliError(f"{run} cannot be exported: {exc}") from None
    with staged(out, overwrite=True, replaceable=is_export, what=f"{fmt} export folder") as tmp:
        extra = exporter.export(model, tmp)
        manifest = {
            "format": fmt, "format_version": type(exporter).format_version, "sercli": __version__,
            "labels": model.labels, "sample_rate": model.sample_rate,
            "max_seconds": model.max_seconds, "min_samples": model.min_samples,
            "normalisation": _norm_entry(model.norm),
            "features": {"layers": model.layers, "dim": model.dim,
                         "frames": "per frame" if model.frames_dynamic else "one per clip (pooled)",
                         "backbone": loaded.meta["backbone"], "pool": loaded.meta["pool"],
                         "layer_names": loaded.meta.get("layer_names"), "dtype": loaded.meta.get("dtype")},
            "run": {"path": str(Path(run).resolve()), "jobs": loaded.jobs},
            **extra,
        }
        write_json(tmp / MANIFEST, manifest)
        deployed, manifest = open_export(tmp, fmt)
        got = exported_probabilities(deployed, manifest, model.examples, ["probe"] * len(model.examples))
        want = run_probabilities(loaded, model.examples)
        diff = float(np.abs(got - want).max())
        if not diff <= TOLERANCE:
            raise SercliError(f"{run} cannot be exported as {fmt}: the exported model's probabilities differ from the "
                              f"run's by {diff:.2g} on test clips (more than {TOLERANCE:g}); nothing written")
        info(f"Checked: on {len(model.examples)} test clips the exported probabilities are within {diff:.1g} of the run's")
    return manifest


def _norm_entry(norm: str) -> dict[str, Any]:
    from sercli.learning.speakernorm import CONSTANT_SHARE, MIN_UTTERANCES, STD_FLOOR

    if norm == "speaker":
        return {"kind": "speaker", "statistics": "each speaker's own clips: mean and std per layer and dimension "
                "over all their frames", "min_utterances": MIN_UTTERANCES, "std_floor": STD_FLOOR,
                "constant_share": CONSTANT_SHARE, "constant": "a dimension whose std is at most constant_share of its "
                "root mean square over the speaker's frames reads as 0 (std infinite)"}
    return {"kind": "none", "statistics": "none: the head's own training statistics are inside it (give mean 0, std 1)"}


def open_export(folder: Path, fmt: str | None = None):
    """(the exporter's loaded folder, its manifest); one line for a folder of another format
    version, a damaged manifest or a file it names that is missing."""
    from sercli.core import plugins as pl
    from sercli.core.runfolder import read_json

    folder = Path(folder)
    manifest = read_json(folder / MANIFEST)
    name = manifest.get("format")
    if fmt is not None and name != fmt or not isinstance(name, str):
        raise SercliError(f"{folder / MANIFEST}: damaged (its format is {name!r})")
    if name not in pl.names("exporter"):
        raise SercliError(f"{folder}: exported as {name!r}, and no installed run exporter reads that format "
                          f"(installed: {', '.join(pl.names('exporter')) or 'none'})")
    exporter = pl.create("exporter", name)
    version = manifest.get("format_version")
    if version != type(exporter).format_version:
        raise SercliError(f"{folder}: written in {name} format version {version!r} (by sercli {manifest.get('sercli')}); "
                          f"this sercli reads version {type(exporter).format_version}: export the run again")
    for key in ("labels", "sample_rate", "normalisation", "files"):
        if key not in manifest:
            raise SercliError(f"{folder / MANIFEST}: damaged (no {key!r})")
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise SercliError(f"{folder / MANIFEST}: damaged (no files named)")
    from sercli.core.runfolder import child

    for role, file in files.items():
        path = child(folder, file, folder / MANIFEST)
        if not path.is_file():
            raise SercliError(f"{folder}: its {role} file {file} is missing; export the run again")
    return exporter.load(folder, manifest), manifest


def exported_probabilities(deployed, manifest: dict[str, Any], features_or_wavs: list[np.ndarray],
                           speakers: list[str], *, are_features: bool = False) -> np.ndarray:
    """(N, C) probabilities of clips (or their exported features) grouped by ``speakers``."""
    from sercli.learning.speakernorm import speaker_stats

    feats = features_or_wavs if are_features else [_features(deployed, w) for w in features_or_wavs]
    L, _, D = feats[0].shape
    if manifest["normalisation"].get("kind") == "speaker":
        stats = speaker_stats(speakers, lambda i: feats[i])
        norm = [stats[s] for s in speakers]
    else:
        norm = [(np.zeros((L, D), np.float32), np.ones((L, D), np.float32))] * len(feats)
    return np.stack([np.asarray(deployed.probabilities(x, m, s), dtype=np.float32).reshape(-1)
                     for x, (m, s) in zip(feats, norm)])


def _features(deployed, wav: np.ndarray) -> np.ndarray:
    return np.asarray(deployed.features(np.ascontiguousarray(wav, dtype=np.float32)), dtype=np.float32)


def predict_exported(folder: Path, records: list[dict[str, Any]]):
    """(records predicted, their probabilities (N, C), ids that failed, labels) for `predict DIR`."""
    from sercli.core.audio import load_audio
    from sercli.core.log import progress
    from sercli.learning.speakernorm import speakers_of

    deployed, manifest = open_export(folder)
    speaker_norm = manifest["normalisation"].get("kind") == "speaker"
    if speaker_norm:  # before any audio is read, as `predict RUN` checks
        speakers_of(records, "this model standardises each speaker's features (norm: speaker; a run trained "
                             "with --norm none classifies single files)")
    sr, longest, shortest = int(manifest["sample_rate"]), manifest.get("max_seconds"), int(manifest.get("min_samples") or 1)
    feats: dict[str, np.ndarray] = {}
    failed: set[str] = set()
    with progress() as bar:
        task = bar.add_task("predict: features", total=len(records))
        for rec in records:
            try:
                if not rec.get("audio"):
                    raise RecordError("an exported model reads audio, and this record has none")
                wav = load_audio(rec["audio"], sr)
                if longest and len(wav) > longest * sr:
                    raise RecordError(f"{len(wav) / sr:.1f} s is longer than the {longest:g} s the exported encoder "
                                      "reads whole (the run's features chunk longer clips): use `sercli predict RUN`")
                if len(wav) < shortest:
                    raise RecordError(f"{len(wav)} samples is too short: the encoder needs at least {shortest}")
                x = _features(deployed, wav)
                if not np.isfinite(x).all():
                    raise RecordError("the exported encoder gives non-finite features for this audio")
                feats[rec["id"]] = x
            except RecordError as exc:
                warn(f"{rec['id']}: {exc} (skipped)")
                failed.add(rec["id"])
            bar.advance(task)
    todo = [rec for rec in records if rec["id"] not in failed]
    if not todo:
        return todo, np.zeros((0, len(manifest["labels"])), np.float32), failed, list(manifest["labels"])
    speakers = (speakers_of(todo, "the inputs that could be read (norm: speaker)") if speaker_norm
                else [""] * len(todo))
    probs = exported_probabilities(deployed, manifest, [feats[r["id"]] for r in todo], speakers, are_features=True)
    return todo, probs, failed, list(manifest["labels"])
