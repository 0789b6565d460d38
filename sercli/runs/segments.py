"""`sercli predict RUN LONG.wav --segments`: an emotion per speech segment of a long recording.

For each recording: a voice-activity detector (sercli.core.speech) finds the speech, reading
the file block by block; each segment is then read alone (sercli.core.audio.read_segment
seeks to it), turned into features exactly as `predict` turns a file into features (the
run's backbone, options, chunking, layers, pooling and storage precision), and kept in a
temporary folder, so that memory holds one segment at a time whatever the recording's length.
The run's models score the segments in the run's batches (their probabilities averaged over
the jobs of a cross-validated run, as `predict` does).

A speaker-normalised run (``norm: speaker``, train's default where it can) standardises each
speaker's features with statistics over that speaker's utterances. Here a recording is taken
as one speaker: the mean and standard deviation over the frames of all its segments
standardise each of them (a recording needs ``MIN_UTTERANCES`` segments for that, as a
speaker needs that many utterances in `predict`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sercli.core.audio import read_segment
from sercli.core.errors import RecordError, SercliError
from sercli.core.log import info, progress, warn
from sercli.core.speech import speech_spans
from sercli.evaluation.evaluate import Arrays, norm_of, rounded
from sercli.learning.model import probabilities
from sercli.learning.speakernorm import MIN_UTTERANCES, normalise, speaker_stats

BATCH = 64  # segments scored at a time (each read back from the temporary folder)


def check_plot(path: Path | None) -> None:
    """SercliError, before any work, when ``--plot`` cannot be written as a figure."""
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise SercliError(f"--plot {path}: give a file name ending in .png (or .svg, .pdf)")
    if path.is_dir():
        raise SercliError(f"--plot {path}: is a folder; give a file name ending in .png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SercliError(f"--plot {path}: cannot make its folder ({exc.strerror or exc})") from None


def predict_segments(files: list[str], models: list[tuple[Any, dict[str, Any]]], vad, max_seconds: float,
                     device: str, writer, plot: Path | None = None) -> None:
    """Write one record per speech segment of each file in ``files`` to ``writer`` (a
    RecordWriter, or anything with ``write(record)``), and the timeline to ``plot``.
    SercliError at the end when a file or a segment could not be predicted (one line for one file)."""
    config = models[0][1]
    for _, c in models[1:]:
        if c["labels"] != config["labels"] or c["features"] != config["features"] or norm_of(c) != norm_of(config):
            raise SercliError("the run's fold models use different labels, features or normalisation")
    if max_seconds <= 0:
        raise SercliError(f"--max-segment {max_seconds:g}: give a positive number of seconds")
    for path in files:
        if not Path(path).is_file():
            raise SercliError(f"{path}: no such file" if not Path(path).exists() else f"{path}: is not a file")
    vad.load()
    scorer = _Scorer(models, device)
    problems: list[str] = []
    timelines = []
    for path in files:
        try:
            spans = speech_spans(path, vad, max_seconds)
            if not spans:
                raise RecordError(f"no speech found (vad {vad.name}); nothing to predict")
            rows, skipped = scorer.rows(path, spans)
        except RecordError as exc:
            problems.append(f"{path}: {exc}")
            continue
        problems += skipped
        for row in rows:
            writer.write(row)
        if hasattr(writer, "flush"):
            writer.flush()
        timelines.append((path, rows))
    if plot is not None and timelines:
        from sercli.evaluation.figures import timeline_png

        try:
            timeline_png(timelines, config["labels"], plot)
        except OSError as exc:
            raise SercliError(f"--plot {plot}: cannot write it ({exc.strerror or exc})") from None
    if len(problems) == 1 and len(files) == 1:
        raise SercliError(problems[0])
    for line in problems:
        warn(f"{line} (skipped)")
    if problems:
        raise SercliError(f"{len(problems)} recordings or segments could not be predicted (see warnings above)")


class _Scorer:
    """The run's models over the segments of a recording, one segment in memory at a time."""

    def __init__(self, models, device: str):
        self.models = models
        self.config = models[0][1]
        self.meta = self.config["features"]
        self.device = device
        self.backbone = None

    def rows(self, path: str, spans: list[tuple[float, float]]) -> tuple[list[dict[str, Any]], list[str]]:
        """(one record per segment that could be scored, a line for each that could not)."""
        from sercli.features.extract import config_for, extract_waveform

        if self.backbone is None:
            if norm_of(self.config) == "speaker":
                info("--segments: this run standardises each speaker's features (norm: speaker); each recording "
                     "is taken as one speaker, the frames of all its segments give the statistics")
            self.backbone = _backbone(self.meta, self.device)
        sr = self.backbone.sample_rate
        cfg = config_for(self.meta, self.device)
        head = self.config["head"]
        skipped, kept = [], []
        with tempfile.TemporaryDirectory(prefix="sercli-segments-") as tmp, progress() as bar:
            task = bar.add_task(f"segments of {Path(path).name}", total=len(spans))
            for i, (start, end) in enumerate(spans):
                where = f"{path} {start:.2f}-{end:.2f} s"
                try:
                    wav = read_segment(path, sr, round(start * sr), max(round(end * sr), round(start * sr) + 1), False)
                    x = extract_waveform(self.backbone, wav, cfg, source=where).astype(np.float32)
                except RecordError as exc:
                    skipped.append(f"{where}: {exc}")
                    continue
                finally:
                    bar.advance(task)
                if (x.shape[0], x.shape[2]) != (head.get("num_layers"), head.get("dim")):
                    raise SercliError(f"{where}: its features have {x.shape[0]} layers x {x.shape[2]}, the model reads "
                                      f"{head.get('num_layers')} x {head.get('dim')}")
                np.save(Path(tmp) / f"{i}.npy", x)
                kept.append(i)
            return self._score(path, spans, kept, Path(tmp), skipped), skipped

    def _score(self, path: str, spans, kept: list[int], tmp: Path, skipped: list[str]) -> list[dict[str, Any]]:
        read = lambda i: np.load(tmp / f"{i}.npy")  # noqa: E731
        stats = None
        if norm_of(self.config) == "speaker" and kept:
            if len(kept) < MIN_UTTERANCES:
                raise RecordError(f"{len(kept)} speech segment{'s' * (len(kept) != 1)}: this run standardises each "
                                  f"speaker's features, a recording is one speaker and needs at least {MIN_UTTERANCES} "
                                  "segments (a run trained with --norm none predicts any number)")
            stats = speaker_stats(["recording"] * len(kept), lambda j: read(kept[j]))["recording"]
        labels = self.config["labels"]
        rows = []
        for first in range(0, len(kept), BATCH):
            batch = kept[first:first + BATCH]
            arrays = [read(i) if stats is None else normalise(read(i), stats) for i in batch]
            probs = np.mean([probabilities(m, Arrays(arrays), int(c["train"].get("batch_size", 32)), "cpu")
                             for m, c in self.models], axis=0)
            for i, row in zip(batch, probs):
                start, end = spans[i]
                if not np.isfinite(row).all():
                    skipped.append(f"{path} {start:.2f}-{end:.2f} s: the model gives non-finite probabilities")
                    continue
                rows.append({"id": f"{path}#{i}", "file": path, "segment": i, "start": round(start, 3),
                             "end": round(end, 3), "predicted": labels[int(row.argmax())],
                             "probabilities": rounded(labels, row)})
        return rows


def _backbone(meta: dict[str, Any], device: str):
    """The run's backbone, built from its features' metadata (as `predict` builds it)."""
    import json

    from sercli.core import plugins as pl

    identity = meta["backbone"]
    backbone = pl.create("backbone", identity["plugin"], identity.get("options", {}))
    if backbone.identity() != identity:
        warn(f"backbone {identity['plugin']!r} now reports {json.dumps(backbone.identity(), sort_keys=True)}; "
             f"the model was trained on {json.dumps(identity, sort_keys=True)}: predictions may drift")
    backbone.load(device)
    return backbone
