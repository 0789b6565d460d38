"""The public API for plugin authors: import from here (and ``sercli.base``, ``sercli.hookspecs``);
every other sercli module is internal and may change.

    from sercli.api import TTSEngine, Options, RecordError, write_wav, warn, canonical

What is here, by use:

* base classes: ``Plugin``, ``Options``, ``LLMBackend``, ``TTSEngine``, ``Backbone``,
  ``Strategy``, ``Head``, ``Corpus``, ``Gate``, ``Tracker``, ``Cluster`` with ``ShardWorker``,
  ``VAD``, ``RunExporter`` (with ``DeployableRun``, what it is given),
  and ``TrainerAPI`` (what a strategy may use of the trainer);
  their docstrings state what each method receives and returns, the error contract and the
  threading contract (``sercli.base``).
* errors: ``RecordError`` (skip this record, carry on), ``SercliError`` (end the run, one line).
* messages: ``info``, ``warn`` (stderr, ``-q`` hides ``info``; never print to stdout, which
  may carry records).
* emotions: ``EMOTIONS`` (the canonical names), ``SYNONYMS``, ``canonical(label)`` (a name or
  None), ``emotion_key(label)`` (canonical, else the label in lower case).
* text: ``same_sentence_key(text)`` (when two sentences are the same sentence).
* records: ``Record``, ``RECORD_FIELDS`` (what a record carries, and how paths resolve).
* files: ``write_wav(path, wav, sample_rate) -> None`` (16-bit PCM WAV, written whole or not at
  all, safe from threads), ``load_audio(path, sample_rate=16000) -> ndarray`` (mono float32 at
  ``sample_rate``; RecordError if unreadable or empty), ``resample(wav, orig_sr, new_sr) ->
  ndarray``, ``safe_name(text) -> str`` (a file name from an id or a voice),
  ``atomic_write_bytes(path, data)``, ``atomic_write_text(path, text)``, ``atomic_path(path, *, fsync=True, per_thread=False)`` (a context manager: a temporary path
  renamed onto ``path`` when the block ends without an error).
* engines with an emotion table (``sercli.synthesis.voicing``): ``scaled_style(table, emotion,
  scale, limits, engine)`` (``table[emotion]``, a dataclass, moved from ``table["neutral"]`` by
  ``scale`` and clamped to ``limits``), ``spoken_text(text) -> str`` (printable, one space
  between words; RecordError if empty), ``utterance_seed(*parts) -> int`` (a seed of those parts
  alone), ``join_sentences(chunks, pause, sample_rate) -> ndarray`` (sentences with pauses between),
  ``package_versions(dists, engine, install) -> dict`` (SercliError naming the install if one is
  missing).
* paid services: ``backoff_delay(attempt, base, cap=30.0) -> float`` (seconds to wait after
  failed attempt ``attempt``: doubling, capped, jittered), ``wait_before_retry(what, error,
  attempt, max_retries, wait) -> None`` (says why, then sleeps), ``MAX_BACKOFF``.
* strategies: ``Examples``, ``FitHooks`` (fields and methods: ``sercli.contract.learning``),
  ``need_synthetic(synthetic, strategy) -> None`` (SercliError naming the strategy when
  ``synthetic`` is empty), ``sample_synthetic(real, synthetic, ratio, seed) -> Examples``
  (``ratio`` synthetic utterances per real one, in their order; all, with a warning, when
  fewer exist); the trainer's ``note_used(**parts)`` (``TrainerAPI``) records what was
  used: kind ``K`` becomes ``counts.K_used`` in the job's config.json (``synthetic_used``);
  ``derived_only_from(real, synthetic) -> Examples`` (``synthetic`` without the speech derived
  from recordings outside ``real``: for inner folds).
* heads: ``HeadModule(num_layers, dim, num_classes)`` (what ``Head.build`` returns, with the
  shared helpers; every attribute and method: ``sercli.contract.learning``).
* gates: ``run_probabilities(run, records, where='') -> (labels, probabilities (N, C))`` (a
  trained run's class probabilities on feature records, averaged over its models).
* formats (``Corpus.export``/``import_records``): ``read_features(rec) -> ndarray`` (a
  record's (layers, frames, dim) float32 features; SercliError if not finite),
  ``FeatureStore(root)`` (a feature store: ``meta()``, ``init(meta)``, ``writer()``).
* export modules (``Backbone.export_module``): ``PowerSpectrum(n_fft, hop, window)`` (torch.stft's
  centred power spectrogram as a convolution, which onnxruntime computes as accurately as torch).

Names that need numpy or torch (``write_wav``, ``load_audio``, ``resample``, the engine tools, ``Examples``,
``FitHooks``, ``HeadModule``, ``PowerSpectrum``) are imported on first use, so that importing this module stays
cheap; in a plugin module import them inside methods or under ``typing.TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from typing import Any

from sercli.base import (
    Backbone,
    Cluster,
    Corpus,
    DeployableRun,
    Gate,
    Head,
    LLMBackend,
    Options,
    Plugin,
    RunExporter,
    ShardWorker,
    Strategy,
    Tracker,
    TrainerAPI,
    TTSEngine,
    VAD,
)
from sercli.core.errors import RecordError, SercliError
from sercli.core.fsutil import atomic_path, atomic_write_bytes, atomic_write_text, safe_name
from sercli.core.labels import CANONICAL as EMOTIONS
from sercli.core.labels import SYNONYMS, canonical, emotion_key
from sercli.core.log import info, warn
from sercli.core.records import Record
from sercli.core.retry import MAX_BACKOFF, backoff_delay, wait_before_retry
from sercli.core.sentences import same_sentence_key
from sercli.learning.strategy_tools import derived_only_from, need_synthetic, sample_synthetic

# The fields of a record (one JSON object per line of a records file). Only ``id`` is always
# there (a line without one is given ``line<N>``); each command names the fields it needs and
# refuses records without them. Strings may be null (absent). Other fields are kept as they are.
RECORD_FIELDS: dict[str, str] = {
    "id": "str, unique in its file: names the record in messages, file names and feature keys",
    "audio": "str, path of the audio file; a relative path is relative to the folder of the "
             "records file that holds it (to the current directory for records read from stdin). "
             "A Corpus yields absolute paths (or paths relative to the current directory)",
    "emotion": "str, a canonical emotion name (EMOTIONS); a Corpus may yield None when "
               "raw_label is not an emotion sercli knows and --map gives it one",
    "raw_label": "str, the corpus's own label (exc, W, 06...): needed from a Corpus",
    "speaker": "str, who speaks (voice for synthetic speech): speaker-grouped protocols need it",
    "session": "str, the recording session (--cv loso-session)",
    "gender": "str, as the corpus gives it",
    "transcript": "str, what is said (real speech); with text, the leakage guard compares them",
    "text": "str, the sentence (synthetic speech, from gen-text)",
    "voice": "str, the TTS voice that spoke it",
    "source": "str, 'real' or 'synthetic'",
    "language": "str, a BCP-47 code of what is said ('en', 'de'): gen-text writes it, corpora set it",
    "split": "str, the corpus's own partition (train, dev, test1...; --cv field:split)",
    "duration": "number, seconds of audio (prepare and synthesize write it)",
    "features": "object {store, key, shape}: where `sercli extract` stored the features; "
                "store is an absolute folder path",
    "provenance": "object, what made the record (plugin, options, versions)",
}

_LAZY = {
    "write_wav": "sercli.core.audio",
    "load_audio": "sercli.core.audio",
    "Examples": "sercli.learning.data",
    "FitHooks": "sercli.learning.train",
    "HeadModule": "sercli.learning.model",
    "resample": "sercli.core.audio",
    "run_probabilities": "sercli.evaluation.filtering",
    "read_features": "sercli.features.read",
    "FeatureStore": "sercli.features.store",
    "PowerSpectrum": "sercli.features.spectrum",
    **{name: "sercli.synthesis.voicing" for name in
       ("scaled_style", "spoken_text", "utterance_seed", "join_sentences", "package_versions")},
}

__all__ = [
    "Backbone", "Cluster", "Corpus", "DeployableRun", "Gate", "Head", "LLMBackend", "Options", "Plugin",
    "RunExporter", "ShardWorker", "Strategy", "Tracker", "TrainerAPI", "TTSEngine", "VAD",
    "RecordError", "SercliError", "info", "warn",
    "EMOTIONS", "SYNONYMS", "canonical", "emotion_key", "same_sentence_key",
    "Record", "RECORD_FIELDS",
    "atomic_path", "atomic_write_bytes", "atomic_write_text", "safe_name",
    "MAX_BACKOFF", "backoff_delay", "wait_before_retry",
    "derived_only_from", "need_synthetic", "sample_synthetic", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sercli.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
