"""Head plugins as the trainer uses them: the plugin with validated options, a fresh module,
what --tune may set, and the seeding every job starts from."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from sercli.learning.model import HeadModule


# The trainer's knobs `sercli train --tune` (and --search) may choose among by validation UA;
# the options of the chosen head are tunable too (see ``tunable``).
TUNABLE = ("lr", "weight_decay", "batch_size", "balanced", "standardize")


def head_plugin(name: str, options: dict[str, Any] | None = None):
    """The head plugin ``name`` (a ``sercli.base.Head``) with validated options."""
    from sercli.core import plugins as pl

    return pl.create("head", name, options)


def tunable(head: str) -> tuple[str, ...]:
    """What --tune and --search may set: the trainer's keys, then the head's options."""
    from sercli.core import plugins as pl

    return TUNABLE + tuple(pl.get_class("head", head).Options.model_fields)


def check_frames(head: str, records: list[dict[str, Any]]) -> None:
    """Refuse a frame-level head on utterance-level features (one frame per utterance)."""
    from sercli.core import plugins as pl
    from sercli.core.errors import SercliError

    if not getattr(pl.get_class("head", head), "frame_level", False):
        return
    shapes = [(r.get("features") or {}).get("shape") for r in records]
    if shapes and all(isinstance(s, list) and len(s) == 3 and s[1] == 1 for s in shapes):
        raise SercliError(f"head {head!r} needs frame features and these have one frame per utterance: "
                          "extract them with `sercli extract --pool none`")


def build_head(name: str, options: dict[str, Any], num_layers: int, dim: int, num_classes: int) -> HeadModule:
    """A fresh module of head ``name``, its ``config`` filled in (enough to rebuild it)."""
    from sercli.core.errors import SercliError

    head = head_plugin(name, options)
    model = head.build(num_layers, dim, num_classes)
    if not isinstance(model, HeadModule):
        raise SercliError(f"head {name!r} built a {type(model).__name__}, not a sercli.api.HeadModule; "
                          "fix or uninstall the plugin that registered it")
    model.config = {"name": name, "options": head.options.model_dump(mode="json"),
                    "num_layers": num_layers, "dim": dim, "num_classes": num_classes}
    return model


def seed_everything(seed: int) -> None:
    """Same seed, same command, same machine -> the same numbers (checked by the tests)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
