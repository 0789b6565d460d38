"""Base classes for the plugin families.

Every plugin class has a ``name``, a one-line ``description`` and a nested pydantic
``Options`` model (``extra="forbid"``) set from the command line with ``-O key=value`` (``--option``).
Import heavy libraries (torch, transformers, clients) inside methods, never at module top.
Import what a plugin needs from ``sercli.api`` (audio, logging, emotion names, the record
schema, the strategy helpers); every other sercli module is internal.

Errors (the same for every family):

* ``RecordError(message)``: this one record (a sentence, an utterance, an audio file) cannot
  be made; the command reports the message with the record's id, skips it and carries on.
* ``SercliError(message)``: the run cannot go on (bad option, missing credentials, a quota
  spent); it ends with exit status 1 and the message as its one line, so write the fix in it.
* Anything else is a bug: it ends the whole command (exit status 1, ``Error: Type: message``;
  ``--debug`` shows the traceback), even when raised for one record.

Threads: ``TTSEngine.synthesize`` is called from a thread pool of ``max_concurrency`` workers
(or ``--jobs``) when that is more than 1, so it must be thread-safe then; leave
``max_concurrency = 1`` for a library that is not. ``LLMBackend.generate`` is called from one
thread; a backend may run its own requests concurrently, and its ``usage`` totals must then
be updated under a lock. ``Backbone.forward``, ``Strategy.fit`` and a ``Head``'s module run
in one thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol

if TYPE_CHECKING:  # only for the annotations: importing them needs numpy and torch
    from sercli.data import Examples
    from sercli.model import HeadModule
    from sercli.train import FitHooks, TrainConfig

from pydantic import BaseModel, ConfigDict, ValidationError

from sercli.errors import SercliError


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def validate_options(cls: type, raw: dict[str, Any], what: str) -> BaseModel:
    model = getattr(cls, "Options", Options)
    try:
        return model(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        fields = ", ".join(model.model_fields) or "none"
        raise SercliError(f"Bad option for {what}: {problems} (options: {fields})") from None


def parse_option_pairs(pairs: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` (pydantic converts the types)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SercliError(f"Bad option {pair!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = value
    return out


class Plugin:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = Options

    def __init__(self, name: str | None = None, options: BaseModel | None = None):
        self.name = name or type(self).name
        self.options = options if options is not None else self.Options()

    def provenance(self) -> dict[str, Any]:
        """What made an output: written into records and run folders."""
        return {"plugin": self.name, "options": self.options.model_dump(mode="json")}

    def identity(self) -> dict[str, Any]:
        """What decides the output (the key of cached work: audio, features). Override to leave
        out settings that only change how work is done (concurrency, retries, endpoints), or to
        add what options do not show (a weights hash, a library version)."""
        return self.provenance()


class LLMBackend(Plugin):
    """Writes sentences a person would say in a given emotion."""

    def generate(self, emotion: str, n: int, *, seed: int, exclude: set[str]) -> Iterator[str]:
        """Yield up to ``n`` new sentences for ``emotion`` (a canonical name, see
        ``sercli.api.EMOTIONS``), none of them the same sentence as one in ``exclude``
        (compare with ``sercli.api.same_sentence_key``); the same ``seed`` should give the
        same sentences where the backend can.

        Sentences are yielded as soon as they exist so the caller can persist them at once.
        """
        raise NotImplementedError

    def check(self, emotions: list[str]) -> None:
        """SercliError (one line, with the fix) when the backend cannot write one of
        ``emotions``; called once with every emotion asked for, before any sentence is made
        (default: any emotion can be written)."""

    def estimate(self, emotion: str, n: int) -> dict[str, int]:
        """Requests and characters a call for ``n`` sentences would cost (for --dry-run)."""
        return {"requests": 0, "characters": 0}

    def usage(self) -> dict[str, int]:
        """Totals spent so far (requests, tokens...) for the end-of-run summary."""
        return {}


class TTSEngine(Plugin):
    """Speaks text in an emotion with one of several voices; writes 16 kHz mono WAV."""

    sample_rate: ClassVar[int] = 16000
    # calls of ``synthesize`` that may run at once, in threads (see the module docstring)
    max_concurrency: ClassVar[int] = 1
    # True when the engine can speak no voice but those ``voices()`` lists: sercli then refuses
    # an unknown ``--voices`` name before any audio is made. False (the default) for engines
    # whose voice names are open (espeak-ng's ``voice+variant``, a cloud service's new voices).
    closed_voices: ClassVar[bool] = False

    def voices(self, emotion: str | None = None) -> list[str]:
        """The voices that can speak ``emotion`` (every voice when None)."""
        raise NotImplementedError

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        """Write ``text`` spoken in ``emotion`` by ``voice`` to ``path`` as a mono WAV at
        ``sample_rate`` (use ``sercli.api.write_wav``: whole file or none). RecordError for
        this one utterance (text refused, empty audio), SercliError to end the run."""
        raise NotImplementedError

    def estimate(self, text: str) -> dict[str, int]:
        """Requests and characters synthesising ``text`` would cost (for --dry-run)."""
        return {"requests": 1, "characters": len(text)}

    def usage(self) -> dict[str, int]:
        """Totals spent so far, for the end-of-run summary (thread-safe: see above)."""
        return {}


class Backbone(Plugin):
    """Turns waveforms into features shaped (layers, frames, dim).

    Utterance-level extractors return frames == 1.
    """

    sample_rate: ClassVar[int] = 16000
    level: ClassVar[str] = "frame"  # "frame" or "utterance"
    # on-disk precision by default; hand-crafted functionals (energies in the 1e5 range)
    # overflow float16 and ask for float32
    store_dtype: ClassVar[str] = "float16"
    # modules a worker process needs before ``load`` (sercli.extract imports them once, early,
    # in the process that forks the workers, e.g. ("transformers.modeling_utils",))
    worker_modules: ClassVar[tuple[str, ...]] = ()

    # -- geometry: what sercli.extract plans with (a property may compute any of these) --
    # Samples of input per output frame, frame j centred near sample j * hop_samples. Declared
    # (with ``num_frames``), it lets sercli cut long recordings into hop-aligned, overlapping
    # chunks and stitch their frames into exactly the frames of the whole recording; it also
    # puts the chunk settings into the store's metadata. None: each recording goes through whole.
    hop_samples: ClassVar[int | None] = None
    # True when a waveform's features change if it is padded to a longer one in the batch
    # (a norm over the padded length, a mask the model lacks). sercli then batches only
    # segments of equal length, so batched features equal one-by-one features.
    padding_sensitive: ClassVar[bool] = False
    # The longest input (seconds) the model accepts, e.g. a position table's length: sercli
    # chunks longer recordings at most this long (below ``--chunk-seconds``). Needs ``hop_samples``.
    max_chunk_seconds: ClassVar[float | None] = None

    def num_frames(self, n_samples: int) -> int | None:
        """Frames ``forward`` returns for ``n_samples`` of audio; None when not declared
        (required with ``hop_samples``). sercli plans chunks with it and skips a recording
        that gives fewer than one frame as too short, before decoding it."""
        return None

    def load(self, device: str = "cpu") -> None:
        """Load weights; called once before the first batch."""

    @property
    def num_layers(self) -> int:
        return 1

    def layer_names(self) -> list[str]:
        return [str(i) for i in range(self.num_layers)]

    def forward(self, wavs: list, device: str = "cpu") -> list:
        """A batch of 1-D float32 numpy waveforms at ``sample_rate`` ->
        a list of float tensors (layers, frames, dim), one per input, frames of padding removed."""
        raise NotImplementedError

    # -- fine-tuning (optional; `sercli train --finetune NAME`, sercli.finetune) -------------
    # A backbone that defines ``trainable_module`` and ``layer_modules`` can be fine-tuned:
    # sercli freezes the module, then trains LoRA adapters (peft) on the Linear modules named
    # in ``lora_targets`` (e.g. ("q_proj", "v_proj")), or the top K of ``layer_modules()``,
    # together with a head. ``forward`` is then called with gradients enabled: it must let
    # them flow to the module's parameters, and give a batch the numbers its inputs get one at
    # a time (``padding_sensitive`` backbones: run unequal lengths apart).
    lora_targets: ClassVar[tuple[str, ...]] = ()

    def trainable_module(self, device: str = "cpu") -> Any:
        """Load fresh weights for training and return the torch ``nn.Module`` that ``forward``
        then runs (as the library builds it: real nn.Linear, no inference-only rewrites)."""
        raise NotImplementedError

    def layer_modules(self) -> list[Any]:
        """The loaded module's parts that compute hidden state i + 1 from hidden state i
        (``num_layers - 1`` of them, bottom to top; the last includes a norm applied after it)."""
        raise NotImplementedError


class TrainerAPI(Protocol):
    """What a strategy may use of the trainer it is given (``sercli.train.Trainer``).

    A strategy decides what to train on and in which order; the trainer owns the loop, the
    loss, the optimiser, early stopping and the seeds, so that every strategy is compared on
    the same footing and the same command gives the same numbers.
    """

    labels: list[str]  # class names; an example's label is an index into this list
    cfg: "TrainConfig"  # read-only: seed, device, lr, max_epochs, batch_size...

    def new_model(self, stats_from: "Examples") -> "HeadModule":
        """A fresh head (same seed, same weights), standardised with statistics of
        ``stats_from`` (training data only, never ``val``)."""

    def fit(self, model: "HeadModule", train: "Examples", val: "Examples", *, max_epochs: int | None = None,
            stage: str = "train", lr: float | None = None, hooks: "FitHooks | None" = None) -> "HeadModule":
        """Train ``model`` in place on ``train`` and return it: early stopping on the UA of
        ``val``, keeping the best weights (or a fixed number of epochs when refitting).
        ``max_epochs`` caps this call, ``stage`` names it in the history, ``lr`` overrides the
        learning rate, ``hooks`` (``sercli.api.FitHooks``) add augmentation, mixup or an extra
        loss. A strategy may call it several times (stages) on the same model."""

    def predict(self, model: "HeadModule", data: "Examples") -> Any:
        """Class probabilities, a numpy array (len(data), len(labels))."""

    def note_used(self, **parts: "Examples | int") -> None:
        """Record what training used, e.g. ``note_used(synthetic=examples)``: the run reports
        it (not the synthetic data that was available)."""


class Strategy(Plugin):
    """A way to train a head on real plus synthetic examples (see TrainerAPI)."""

    def fit(self, trainer: TrainerAPI, real: "Examples", synthetic: "Examples", val: "Examples") -> "HeadModule":
        """Return the trained head (a ``trainer.new_model``, trained with ``trainer.fit``).

        ``real``, ``synthetic`` and ``val`` are ``sercli.api.Examples`` (records with integer
        labels into ``trainer.labels`` and domains 0 = real, 1 = synthetic); ``synthetic`` may
        be empty (use ``need_synthetic`` to refuse that) and ``val`` is for early stopping
        only. The test part never reaches a strategy. Call ``trainer.note_used(synthetic=...)``
        with the synthetic examples trained on. A SercliError ends the run (bad data, bad
        options); ``fit`` is called again, with a fresh trainer, for --tune and --refit."""
        raise NotImplementedError


class Head(Plugin):
    """A downstream model on the features (the part every backbone and strategy trains).

    ``build`` returns a fresh ``sercli.api.HeadModule`` (torch imported inside it); sercli
    fills its ``mean``/``std`` with training statistics, records its ``config`` (this head's
    name and options, the geometry) in the run folder and rebuilds it from there with
    ``build`` again, so the module must depend on nothing but the options and the arguments.
    """

    # True: the head needs frames (features extracted with ``--pool none``); sercli refuses
    # utterance-level features (one frame per utterance) before training.
    frame_level: ClassVar[bool] = False

    def build(self, num_layers: int, dim: int, num_classes: int) -> "HeadModule":
        """A new module for features (B, num_layers, T, dim) and ``num_classes`` classes."""
        raise NotImplementedError

    def search_space(self) -> dict[str, list | tuple]:
        """What ``train --search`` may choose among, per option: a list of values, or
        ``(low, high, "log" | "linear")`` for a number. Options left out keep their value."""
        return {}


class Corpus(Plugin):
    """Reads a corpus folder in its original layout and yields manifest records."""

    # The setting papers use, applied unless the user passes --classes / --map
    # (IEMOCAP: angry, happy, neutral, sad with excited merged into happy).
    default_classes: ClassVar[tuple[str, ...] | None] = None
    default_map: ClassVar[dict[str, str] | None] = None

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        """Yield one record per utterance under the corpus folder ``path``: the fields of
        ``sercli.api.RECORD_FIELDS`` (``id``, ``audio``, ``emotion`` from
        ``sercli.api.canonical``, ``raw_label``, ``speaker``...). SercliError when ``path`` is
        not this corpus; a file that cannot be parsed is better skipped with ``warn``."""
        raise NotImplementedError

    # -- optional: a corpus format sercli can also write and read back (`sercli export NAME`,
    # `sercli import NAME`): EmoBox jsonl, a Hugging Face datasets folder ---------------------

    def export(self, records: list[dict[str, Any]], path: Path, root: Path | None = None) -> None:
        """Write ``records`` (sercli records, maybe from another corpus) to ``path`` in this
        format, whole or not at all; audio paths relative to ``root`` when given."""
        raise NotImplementedError

    def import_records(self, path: Path, store: Path | None = None) -> Iterator[dict[str, Any]]:
        """The records ``export`` wrote to ``path``, every field as it was; features it
        carried go into a new feature store ``store`` (SercliError without one)."""
        raise NotImplementedError


class Gate(Plugin):
    """Judges synthetic utterances between `synthesize` and `extract` (`sercli filter`): keeps
    a record, or drops it with a reason (a Whisper round trip, a model trained on real speech).

    `sercli filter` calls ``check`` once with every record to judge, before anything heavy
    (refuse what the gate cannot judge: a missing field, a language its model lacks, with the
    fix), then ``load`` once, then ``judge`` on batches of at most ``batch_size`` records.
    """

    batch_size: ClassVar[int] = 8
    # record fields the gate reads; sercli refuses records without them before any work
    needs: ClassVar[tuple[str, ...]] = ()

    def check(self, records: list[dict[str, Any]]) -> None:
        """SercliError (one line, with the fix) when the gate cannot judge these records."""

    def load(self, device: str = "cpu") -> None:
        """Load models; called once before the first ``judge``."""

    def judge(self, records: list[dict[str, Any]]) -> list[Any]:
        """One verdict per record, in order: ``(None, scores)`` keeps it, ``(reason, scores)``
        drops it (``reason``: a short phrase such as ``"WER 0.62 > 0.4"``); ``scores`` is a
        dict of JSON values (the measurements) written into the record's provenance. An entry
        may be a ``RecordError``: that record cannot be judged (reported, left for a re-run)."""
        raise NotImplementedError


class Tracker(Plugin):
    """Sends a finished training run to an experiment tracker (TensorBoard event files, an
    MLflow store...): `sercli train --tracker NAME` (options ``-O tracker.KEY=VALUE``), or
    `sercli track RUN --tracker NAME` for a run trained before.

    sercli reads the run folder and calls ``start`` once, then ``scalar``, ``text`` and
    ``figure`` any number of times (per-epoch curves with the epoch as ``step``; fold
    metrics with the job's index), then ``finish`` (also after a failure). Tags are
    ``/``-separated paths such as ``fold-00-seed-0/val_UA`` or ``test/UA``.
    """

    def start(self, where: Path, name: str, params: dict[str, Any]) -> None:
        """Begin a run called ``name`` with its configuration ``params`` (a JSON-able dict);
        ``where`` is a folder sercli chose for local files (trackers with a store of their
        own may use an option instead). SercliError when the tracker cannot work (a missing
        library: say how to install it)."""
        raise NotImplementedError

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        raise NotImplementedError

    def text(self, tag: str, text: str) -> None:
        """Markdown text (the parameters, a table of results)."""

    def figure(self, tag: str, png: Path) -> None:
        """A PNG figure the run holds (confusion matrix, training curves)."""

    def finish(self) -> None:
        """Write everything out and close."""


class ShardWorker:
    """Work a `Cluster` runs on its workers: built once per worker, on that worker's machine
    (``setup``: load the model, open the client), then called once per shard. It must pickle
    (it travels to the workers), so keep it to settings and build the heavy parts in ``setup``.
    ``__call__`` returns the shard's result (it travels back, so keep it to arrays and plain
    data); it must not depend on which worker runs it, since a shard whose worker dies is run
    again on another."""

    def setup(self, device: str) -> None:
        """Called once on the worker before its first shard; ``device`` is ``cpu`` or the GPU
        the cluster gave this worker (``cuda``: the worker sees only its own)."""

    def __call__(self, shard: Any) -> Any:
        raise NotImplementedError


class Cluster(Plugin):
    """Runs sharded work past this process: `--cluster NAME` or `--cluster NAME://ADDRESS`
    on `extract`, `synthesize` and `train --cv` (built in: `ray`).

    sercli splits the records into shards and calls ``map_shards``; the results come back to
    this process, which alone writes the feature store and the records, so what a cluster run
    makes is what a local run makes. Folds x seeds of `train --cv` are shards of one job each
    (a job writes its own run folder; a re-run job seeds itself and rewrites it). A cluster
    needs no joblib backend: joblib's ray backend re-runs nothing when a worker dies, while
    ``map_shards`` must.
    """

    def connect(self, address: str | None) -> None:
        """Join the cluster at ``address`` (the whole ``--cluster`` value, e.g.
        ``ray://head:10001``), or start a local one when None. SercliError (one line, with
        the fix) when the library is missing or the cluster cannot be reached."""
        raise NotImplementedError

    def map_shards(self, worker: ShardWorker, shards: list[Any], *, workers: int | None = None,
                   gpus: float = 0.0, on_result: Any = None) -> None:
        """Run ``worker(shard)`` for every shard on up to ``workers`` workers (default: one per
        GPU when ``gpus`` > 0, else one per CPU), each holding ``gpus`` GPUs, each calling
        ``worker.setup`` once. ``on_result(i, result)`` is called in this process as shard
        ``i`` finishes, exactly once per shard, in any order. A shard whose worker dies is run
        again on another worker; an exception raised by ``worker(shard)`` ends the run."""
        raise NotImplementedError

    def close(self) -> None:
        """Leave the cluster (shut down a local one this object started)."""
