"""A trained run as two torch modules, for a run exporter (`sercli export NAME RUN`,
sercli.contract.export.DeployableRun), and the run's own probabilities to check an export by.

``FeaturesModule``: the backbone's export module (``Backbone.export_module``), the layers the run's
feature store kept, its pooling (``sercli.features.compute.pool_frames``) and its precision
(float16 features rounded as the store rounds them): the features `predict RUN` reads.
``HeadsModule``: the features standardised with a (mean, std) the caller gives (a speaker's
statistics for a speaker-normalised run: sercli.learning.speakernorm), then every job's head and
the mean of their probabilities, as `predict RUN` averages a cross-validated run's jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sercli.contract.export import DeployableRun
from sercli.core.errors import SercliError
from sercli.features.compute import pool_frames
from sercli.features.config import parse_layers

PROBE_SECONDS = (1.0, 1.3, 1.6, 1.9, 2.2)  # five clips: enough for one speaker's statistics


class FeaturesModule(nn.Module):
    def __init__(self, backbone: nn.Module, layers: list[int], pool: str, dtype: str):
        super().__init__()
        self.backbone, self.pool, self.half = backbone, pool, dtype == "float16"
        self.register_buffer("layers", torch.tensor(layers, dtype=torch.long))

    def forward(self, wav):
        f = self.backbone(wav).index_select(0, self.layers).float()
        f = pool_frames(f, self.pool)
        return f.half().float() if self.half else f


class HeadsModule(nn.Module):
    def __init__(self, heads: list[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, x, mean, std):
        x = (x - mean[None, :, None, :]) / std[None, :, None, :]
        lengths = torch.ones(1, dtype=torch.long) * x.shape[2]
        probs = [torch.softmax(head(x, lengths), -1) for head in self.heads]
        return torch.stack(probs).mean(0)


@dataclass
class Loaded:
    """A run's models and what they read, as `predict RUN` loads them."""

    models: list[tuple[Any, dict[str, Any]]]
    labels: list[str]
    meta: dict[str, Any]
    norm: str
    jobs: list[str]


def load_run(run: Path, job: str | None = None) -> Loaded:
    """The run's jobs (all, or ``job``), checked to read the same features the same way."""
    from sercli.core.runfolder import jobs_of
    from sercli.evaluation.evaluate import norm_of
    from sercli.learning.finetune import is_finetuned
    from sercli.learning.train import load_model

    jobs = jobs_of(run)
    if job:
        jobs = [j for j in jobs if j["name"] == job]
        if not jobs:
            raise SercliError(f"--job {job!r}: {run} has no such job (its jobs: {', '.join(j['name'] for j in jobs_of(run))})")
    models = [load_model(j["dir"]) for j in jobs]
    config = models[0][1]
    for _, c in models[1:]:
        if c["labels"] != config["labels"] or c["features"] != config["features"] or norm_of(c) != norm_of(config):
            raise SercliError(f"{run}: its fold models use different labels, features or normalisation")
    if is_finetuned(config):
        raise SercliError(f"{run}: a fine-tuned run (--finetune) cannot be exported: its encoder is trained with "
                          "the head, and only a frozen backbone's features are exported")
    return Loaded(models, list(config["labels"]), config["features"], norm_of(config), [j["name"] for j in jobs])


def backbone_of(meta: dict[str, Any]):
    from sercli.core import plugins as pl
    from sercli.core.log import warn

    identity = meta["backbone"]
    backbone = pl.create("backbone", identity["plugin"], identity.get("options", {}))
    if backbone.identity() != identity:
        warn(f"backbone {identity['plugin']!r} now reports other settings or weights than the run was trained on: "
             "the export follows the backbone as it is now")
    return backbone


def deployable(loaded: Loaded) -> DeployableRun:
    """The run as a ``DeployableRun``; SercliError when it cannot be one."""
    meta = loaded.meta
    name = meta["backbone"]["plugin"]
    if meta.get("compute_dtype"):
        raise SercliError(f"its features were computed under --compute-dtype {meta['compute_dtype']}, which an "
                          "exported model cannot reproduce; extract them in float32 and train again")
    backbone = backbone_of(meta)
    try:
        module = backbone.export_module()
    except NotImplementedError as exc:
        why = f" ({exc})" if str(exc) else ""
        raise SercliError(f"backbone {name!r} cannot be exported: it gives no torch module to trace "
                          f"(Backbone.export_module){why}") from None
    layers = parse_layers(meta["layers"], backbone.num_layers)
    features = FeaturesModule(module, layers, meta["pool"], meta.get("dtype", "float32")).eval()
    head = HeadsModule([m.to("cpu").eval() for m, _ in loaded.models]).eval().requires_grad_(False)
    c = loaded.models[0][0].config
    max_seconds = None
    if backbone.hop_samples:  # longer clips are chunked by `sercli extract`: the export reads whole clips
        max_seconds = float((meta.get("chunk") or {}).get("seconds", 20.0))
        if backbone.max_chunk_seconds:
            max_seconds = min(max_seconds, float(backbone.max_chunk_seconds))
    return DeployableRun(
        labels=loaded.labels, sample_rate=int(backbone.sample_rate), features=features, head=head,
        layers=int(c["num_layers"]), dim=int(c["dim"]), frames_dynamic=meta["pool"] == "none", norm=loaded.norm,
        min_samples=_min_samples(backbone), max_seconds=max_seconds,
        examples=probes(int(backbone.sample_rate)),
    )


def _min_samples(backbone) -> int:
    if not backbone.hop_samples:
        return 1
    n = 1
    while backbone.num_frames(n) < 1 and n < 1 << 24:
        n *= 2
    lo, hi = n // 2 + 1, n
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if backbone.num_frames(mid) < 1 else (lo, mid)
    return hi


def probes(sample_rate: int) -> list[np.ndarray]:
    """Five clips like voiced speech of one speaker in several moods (a gliding harmonic tone
    of its own pitch, loudness, brightness and syllable rate, over noise), the same on every
    call: to trace with and to compare an export against the run."""
    rng = np.random.default_rng(25)
    out = []
    for k, seconds in enumerate(PROBE_SECONDS):
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        f0 = (90 + 45 * k) * (1 + 0.15 * np.sin(2 * np.pi * (2 + k) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        voiced = sum(np.sin(h * phase) / h ** (0.6 + 0.3 * k) for h in range(1, 12))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + k) * t)
        wav = (0.05 + 0.1 * k) * envelope * voiced + (0.002 + 0.01 * k) * rng.standard_normal(len(t))
        out.append(wav.astype(np.float32))
    return out


def run_probabilities(loaded: Loaded, wavs: list[np.ndarray]) -> np.ndarray:
    """The run's probabilities on in-memory clips of one speaker, as `predict RUN` computes them
    (the backbone plugin, sercli.features.extract, speaker statistics over these clips)."""
    from sercli.evaluation.evaluate import Arrays
    from sercli.features.compute import extract_waveform
    from sercli.features.config import config_for
    from sercli.learning.model import probabilities
    from sercli.learning.speakernorm import normalise, speaker_stats

    backbone = backbone_of(loaded.meta)
    backbone.load("cpu")
    cfg = config_for(loaded.meta, "cpu")
    arrays = [extract_waveform(backbone, w, cfg).astype(np.float32) for w in wavs]
    if loaded.norm == "speaker":
        stats = speaker_stats(["probe"] * len(arrays), lambda i: arrays[i])["probe"]
        arrays = [normalise(x, stats) for x in arrays]
    return np.mean([probabilities(m, Arrays(arrays), int(c["train"].get("batch_size", 32)), "cpu")
                    for m, c in loaded.models], axis=0)
