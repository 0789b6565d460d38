"""What a run is, in words: its features and head (what two runs that differ in more than the
strategy differ in), and how many seeds its pooled predictions hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def seeds_of(agg: dict[str, Any]) -> int:
    """How many times the pooled predictions hold each test utterance (once per seed)."""
    return 1 if agg.get("ensemble_seeds") else max(len(agg.get("seeds") or [1]), 1)


def describe_run(run: Path) -> dict[str, str]:
    """``{"features": "whisper-tiny.en mean", "head": "mlp (hidden=16)"}`` of a run's first job:
    what two runs that differ in more than the strategy differ in."""
    from sercli.core.runfolder import CONFIG_FILE, jobs_of, read_json

    config = read_json(jobs_of(run)[0]["dir"] / CONFIG_FILE)
    meta = config.get("features") or {}
    backbone = meta.get("backbone") or {}
    features = backbone.get("plugin", "?") + _options_text(backbone.get("options") or {}, "backbone",
                                                           backbone.get("plugin", "?"))
    if meta.get("layers") not in (None, "all"):
        features += f" layers {meta['layers']}"
    if meta.get("pool"):
        features += f" {meta['pool']}"
    finetune = (config.get("train") or {}).get("finetune")
    if finetune:
        features += f" (fine-tuned: {finetune.get('mode', '?')})"
    head = config.get("head") or {}
    return {"features": features, "head": head.get("name", "mlp") + _options_text(head.get("options") or {}, "head",
                                                                                  head.get("name", "mlp"))}


def _options_text(options: dict, family: str | None = None, name: str | None = None) -> str:
    """`` (k=v, ...)`` of the options that differ from the plugin's defaults (all when unknown)."""
    defaults = {}
    if family:
        from sercli.core import plugins as pl
        from sercli.core.errors import SercliError

        try:
            defaults = pl.get_class(family, name).Options().model_dump(mode="json")
        except (SercliError, Exception):  # not installed any more, or required options
            defaults = {}
    shown = {k: v for k, v in sorted(options.items()) if k not in defaults or defaults[k] != v}
    return " (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else ""
