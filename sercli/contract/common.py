"""What every plugin family shares: ``Plugin`` (name, description, ``Options``, provenance,
identity), the ``-O key=value`` options and the error contract.
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

Two families differ, and say so in their module: ``Backbone.forward`` (sercli.contract.features:
any error there costs only the inputs it was raised for) and ``Tracker`` (sercli.contract.tracker:
the run is complete before a tracker starts, and a failing tracker never removes it). What a
plugin returns is checked where a wrong value would otherwise pass silently (a gate's verdicts,
a strategy's ``fit`` result, a backbone's frames against ``num_frames``): a wrong value ends the
command with one line that names the plugin (its entry point and version).

Threads: ``TTSEngine.synthesize`` is called from a thread pool of ``max_concurrency`` workers
(or ``--jobs``) when that is more than 1, so it must be thread-safe then; leave
``max_concurrency = 1`` for a library that is not. ``LLMBackend.generate`` is called from one
thread; a backend may run its own requests concurrently, and its ``usage`` totals must then
be updated under a lock. ``Backbone.forward``, ``Strategy.fit`` and a ``Head``'s module run
in one thread.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sercli.contract.errors import SercliError


class Options(BaseModel):
    # a plugin option is a finite number: ``-O sigma=inf`` is refused with the option named
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def validate_options(cls: type, raw: dict[str, Any], what: str) -> BaseModel:
    model = getattr(cls, "Options", Options)
    try:
        return model(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_named(err)}: {err['msg']}" for err in exc.errors())
        fields = ", ".join(model.model_fields) or "none"
        raise SercliError(f"Bad option for {what}: {problems} (options: {fields})") from None


def _named(err: dict[str, Any]) -> str:
    """``dropout=nan``: the option and the value given (``options`` for the whole set)."""
    name = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    if not name:
        return "options"
    return f"{name}={value}" if isinstance(value, (str, int, float)) and len(str(value)) <= 40 else name


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
