"""Base classes for the plugin families.

Every plugin class has a ``name``, a one-line ``description`` and a nested pydantic
``Options`` model (``extra="forbid"``) set from the command line with ``-O key=value`` (``--option``).
Import heavy libraries (torch, transformers, clients) inside methods, never at module top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterator

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
        """Yield up to ``n`` new sentences for ``emotion`` (none of them in ``exclude``).

        Sentences are yielded as soon as they exist so the caller can persist them at once.
        """
        raise NotImplementedError

    def estimate(self, emotion: str, n: int) -> dict[str, int]:
        """Requests and characters a call for ``n`` sentences would cost (for --dry-run)."""
        return {"requests": 0, "characters": 0}

    def usage(self) -> dict[str, int]:
        """Totals spent so far (requests, tokens...) for the end-of-run summary."""
        return {}


class TTSEngine(Plugin):
    """Speaks text in an emotion with one of several voices; writes 16 kHz mono WAV."""

    sample_rate: ClassVar[int] = 16000
    max_concurrency: ClassVar[int] = 1

    def voices(self, emotion: str | None = None) -> list[str]:
        raise NotImplementedError

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        raise NotImplementedError

    def estimate(self, text: str) -> dict[str, int]:
        return {"requests": 1, "characters": len(text)}

    def usage(self) -> dict[str, int]:
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


class Strategy(Plugin):
    """A way to train a head on real plus synthetic examples (see sercli.train.Trainer)."""

    def fit(self, trainer, real, synthetic, val):
        """Return the trained head. ``real``/``synthetic``/``val`` are sercli.train.Dataset."""
        raise NotImplementedError


class Corpus(Plugin):
    """Reads a corpus folder in its original layout and yields manifest records."""

    # The setting papers use, applied unless the user passes --classes / --map
    # (IEMOCAP: angry, happy, neutral, sad with excited merged into happy).
    default_classes: ClassVar[tuple[str, ...] | None] = None
    default_map: ClassVar[dict[str, str] | None] = None

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        raise NotImplementedError
