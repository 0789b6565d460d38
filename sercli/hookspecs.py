"""The whole plugin contract. Each hook receives ``register(obj, name=None)``.

A plugin registers classes by name; nothing is built until a command selects one.
A name ending in ``:`` is a prefix: ``hf:`` matches ``hf:facebook/wav2vec2-base``.
``register_commands`` registers subcommands instead of classes.

The families are derived from the hookspecs below (:func:`families`): each spec says its
family key, the word used in messages and the ``sercli.base`` class its classes subclass.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pluggy

hookspec = pluggy.HookspecMarker("sercli")
hookimpl = pluggy.HookimplMarker("sercli")


@dataclass(frozen=True)
class Family:
    key: str  # "llm", "tts", ... as in `plugins.create(key, name)` and `sercli plugins --json`
    hook: str  # the hookspec's name
    word: str  # in messages: "Unknown LLM backend 'x'"
    base: str | None  # sercli.base class every registered class subclasses; None: commands


def _family(key: str, word: str, base: str | None):
    def mark(fn):
        fn.sercli_family = Family(key, fn.__name__, word, base)
        return hookspec(fn)

    return mark


@_family("llm", "LLM backend", "LLMBackend")
def register_llm_backends(register):
    """Register text generators (subclasses of sercli.base.LLMBackend)."""


@_family("tts", "TTS engine", "TTSEngine")
def register_tts_engines(register):
    """Register speech synthesisers (subclasses of sercli.base.TTSEngine)."""


@_family("backbone", "backbone", "Backbone")
def register_backbones(register):
    """Register feature extractors / speech encoders (subclasses of sercli.base.Backbone)."""


@_family("strategy", "strategy", "Strategy")
def register_strategies(register):
    """Register ways to train on real plus synthetic data (subclasses of sercli.base.Strategy)."""


@_family("head", "head", "Head")
def register_heads(register):
    """Register downstream heads trained on the features (subclasses of sercli.base.Head)."""


@_family("corpus", "corpus", "Corpus")
def register_corpora(register):
    """Register corpus readers that turn a corpus folder into records (sercli.base.Corpus)."""


@_family("command", "command", None)
def register_commands(register):
    """Register subcommands: ``register(fn_or_typer_app, name=None)``. A function becomes
    ``sercli NAME`` (default: its name with ``_`` as ``-``), its parameters Typer options and
    arguments; a ``typer.Typer`` app becomes a command group. A name that a built-in command
    has is refused with one warning."""


def families() -> dict[str, Family]:
    """family key -> Family, one per hookspec, in the order declared here."""
    module = sys.modules[__name__]
    return {
        fam.key: fam
        for fam in (getattr(getattr(module, n), "sercli_family", None) for n in vars(module))
        if isinstance(fam, Family)
    }


@_family("gate", "quality gate", "Gate")
def register_gates(register):
    """Register quality gates that keep or drop synthetic utterances (subclasses of
    sercli.base.Gate), run by `sercli filter` between `synthesize` and `extract`."""


@_family("tracker", "tracker", "Tracker")
def register_trackers(register):
    """Register experiment trackers that record a training run's parameters, curves, metrics
    and figures (subclasses of sercli.base.Tracker): `sercli train --tracker NAME`."""


@_family("cluster", "cluster", "Cluster")
def register_clusters(register):
    """Register engines that run sharded work on many machines or GPUs (subclasses of
    sercli.base.Cluster): `--cluster NAME[://ADDRESS]` on extract, synthesize and train --cv."""


@_family("exporter", "run exporter", "RunExporter")
def register_run_exporters(register):
    """Register formats a trained run is deployed in (subclasses of sercli.base.RunExporter):
    `sercli export NAME RUN -o DIR` writes one, `sercli predict DIR AUDIO...` runs it."""


@_family("vad", "voice-activity detector", "VAD")
def register_vads(register):
    """Register voice-activity detectors that find the speech segments of a long recording
    (subclasses of sercli.base.VAD): `sercli predict RUN LONG.wav --segments --vad NAME`."""
