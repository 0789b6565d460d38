"""The whole plugin contract. Each hook receives ``register(cls, name=None)``.

A plugin registers classes by name; nothing is built until a command selects one.
A name ending in ``:`` is a prefix: ``hf:`` matches ``hf:facebook/wav2vec2-base``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("sercli")
hookimpl = pluggy.HookimplMarker("sercli")


@hookspec
def register_llm_backends(register):
    """Register text generators (subclasses of sercli.base.LLMBackend)."""


@hookspec
def register_tts_engines(register):
    """Register speech synthesisers (subclasses of sercli.base.TTSEngine)."""


@hookspec
def register_backbones(register):
    """Register feature extractors / speech encoders (subclasses of sercli.base.Backbone)."""


@hookspec
def register_strategies(register):
    """Register ways to train on real plus synthetic data (subclasses of sercli.base.Strategy)."""


@hookspec
def register_corpora(register):
    """Register corpus readers that turn a corpus folder into records (sercli.base.Corpus)."""
