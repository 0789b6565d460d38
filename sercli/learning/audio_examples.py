"""Audio records as training examples, for fine-tuning (sercli.learning.finetune): waveforms where
stored features would be, so that the Trainer's batching and the one inference path
(sercli.evaluation.evaluate.probabilities) handle both alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sercli.learning.data import Examples
from sercli.core.errors import RecordError, SercliError

# the "features" of a fine-tuned run's config.json: audio, not a feature store
KIND = "audio"

_audio: dict[tuple[str, int, int], np.ndarray] = {}
_audio_bytes = 0
AUDIO_CACHE_LIMIT = 2048 << 20


@dataclass
class AudioExamples(Examples):
    """Examples whose ``features(i)`` is record i's waveform, (1, samples, 1) float32: the
    first ``max_samples`` at ``sample_rate``."""

    sample_rate: int = 16000
    max_samples: int = 30 * 16000

    def _like(self, records, labels, domains) -> "AudioExamples":
        return AudioExamples(records=records, labels=labels, domains=domains,
                             sample_rate=self.sample_rate, max_samples=self.max_samples)

    def __add__(self, other: Examples) -> "AudioExamples":
        return self._like(self.records + other.records, self.labels + other.labels, self.domains + other.domains)

    def subset(self, idx) -> "AudioExamples":
        idx = list(idx)
        return self._like([self.records[i] for i in idx], [self.labels[i] for i in idx],
                          [self.domains[i] for i in idx])

    def durations(self) -> list[float]:
        return [float(r["duration"]) if r.get("duration") is not None else self.features(i).shape[1] / self.sample_rate
                for i, r in enumerate(self.records)]

    def features(self, i: int) -> np.ndarray:
        return waveform(self.records[i], self.sample_rate, self.max_samples)[None, :, None]


def waveform(rec: dict[str, Any], sample_rate: int, limit: int) -> np.ndarray:
    """A record's audio (cached), cut to ``limit`` samples; SercliError naming the record when
    it cannot be read (training and evaluation need every record they are given)."""
    global _audio_bytes
    from sercli.core.audio import load_audio

    path = rec.get("audio")
    if not path:
        raise SercliError(f"record {rec.get('id')!r} has no audio: fine-tuning reads audio records "
                          "(the output of `sercli prepare` or `synthesize`)")
    key = (str(path), sample_rate, limit)
    wav = _audio.get(key)
    if wav is None:
        try:
            wav = load_audio(path, sample_rate)[:limit]
        except RecordError as exc:
            raise SercliError(f"record {rec.get('id')!r}: {exc}") from None
        if _audio_bytes + wav.nbytes <= AUDIO_CACHE_LIMIT:
            _audio[key] = wav
            _audio_bytes += wav.nbytes
    return wav


def examples(records, label_index: dict[str, int], domain: int, meta: dict[str, Any]) -> AudioExamples:
    """`Examples.build` for audio: the records with a learnt emotion, read as ``meta`` says."""
    data = Examples.build(records, label_index, domain)
    return AudioExamples(records=data.records, labels=data.labels, domains=data.domains,
                         sample_rate=int(meta["sample_rate"]), max_samples=int(meta["max_samples"]))


def unlabelled(records, meta: dict[str, Any]) -> AudioExamples:
    """Records to predict (no emotion needed), read as ``meta`` says."""
    n = len(records)
    return AudioExamples(records=list(records), labels=[0] * n, domains=[0] * n,
                         sample_rate=int(meta["sample_rate"]), max_samples=int(meta["max_samples"]))


def readable(records, meta: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(the records whose audio decodes, {id: why not} for the others): what predict skips."""
    ok, failed = [], {}
    for rec in records:
        try:
            waveform(rec, int(meta["sample_rate"]), int(meta["max_samples"]))
            ok.append(rec)
        except SercliError as exc:
            failed[str(rec.get("id"))] = str(exc)
    return ok, failed


def check_records(records, meta: dict[str, Any] | None = None) -> None:
    """SercliError unless every record has audio (and, with ``meta``, is the kind a model reads)."""
    if meta is not None and meta.get("kind") != KIND:
        raise SercliError("the model was trained on stored features, not fine-tuned on audio")
    for rec in records:
        if not rec.get("audio"):
            raise SercliError(f"record {rec.get('id')!r} has no audio: a fine-tuned model reads audio records")
