"""Fine-tuning a backbone's encoder together with a head, on audio records.

`sercli train AUDIO_RECORDS --finetune BACKBONE` trains the same head as on stored features,
but on the hidden states the backbone computes in the training loop itself, so that the
encoder learns too: LoRA adapters on its attention projections (``mode="lora"``, through
peft) or its top K layers (``mode="top"``). Everything else is the frozen recipe's: the
Trainer's loop, the protocols, strategies, seeds and guards. The pieces:

* ``Finetune``: what to fine-tune and how (TrainConfig.finetune holds its ``model_dump``).
* ``AudioExamples`` (sercli.learning.audio_examples): `sercli.learning.data.Examples` whose "features" are waveforms shaped
  (1, samples, 1), so `sercli.learning.data.collate` and `sercli.evaluation.evaluate.probabilities` pad them into
  (B, 1, S, 1) batches with lengths in samples, as they pad feature frames.
* ``FinetuneModel``: encoder + head behind the head contract (``embed``, ``classifier``,
  ``config``, ``layer_weights``): ``embed`` runs the backbone on each waveform at its own
  length (padding-sensitive backbones take equal lengths together, so a batch gives exactly
  the numbers of one input at a time), then the head on the hidden states (B, L, T, D).
* ``new_model`` / ``saved_state`` / ``load``: a fresh model (head statistics from the frozen
  encoder on the training part), what a run folder keeps (the trainable encoder tensors and the
  head: never the frozen weights) and the model rebuilt from it.

A backbone takes part through four members (see `sercli.base.Backbone`): ``trainable_module``,
``layer_modules``, ``lora_targets`` and a ``forward`` that gradients flow through. This module
never imports a backbone plugin by name.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Callable, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sercli.learning.audio_examples import (  # noqa: F401  (part of this module's interface)
    KIND, AudioExamples, check_records, examples, readable, unlabelled, waveform,
)
from sercli.core.errors import SercliError
from sercli.core.log import info, warn

# prefixes of the tensor names in model.safetensors
ENCODER, HEAD = "encoder.", "head."
# training utterances whose frozen hidden states set the head's standardisation
STATS_ITEMS = 500


class Finetune(BaseModel):
    """What is fine-tuned and how; stored as TrainConfig.finetune (a plain dict)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str
    backbone_options: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["lora", "top"] = "lora"
    layers: int = Field(2, ge=1, description="top: the transformer layers that learn (from the top)")
    lora_rank: int = Field(8, ge=1)
    lora_alpha: Optional[float] = Field(None, gt=0, description="LoRA scale numerator (default: 2 x rank)")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    backbone_lr: Optional[float] = Field(None, gt=0, description="default: 1e-4 for lora, 5e-5 for top")
    amp: bool = Field(True, description="bfloat16 autocast of the backbone on a GPU (never on the CPU)")
    max_seconds: float = Field(30.0, gt=0, description="longer recordings are cut to their first max_seconds")

    @model_validator(mode="after")
    def _defaults(self) -> "Finetune":
        if self.lora_alpha is None:
            self.lora_alpha = 2.0 * self.lora_rank
        if self.backbone_lr is None:
            self.backbone_lr = 1e-4 if self.mode == "lora" else 5e-5
        return self


def parse(raw: dict[str, Any]) -> Finetune:
    """A Finetune from TrainConfig.finetune or command-line values; one line when invalid."""
    try:
        return Finetune(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'finetune'}: {e['msg']}" for e in exc.errors())
        raise SercliError(f"bad fine-tuning setting: {problems}") from None


def is_finetuned(config: dict[str, Any]) -> bool:
    """Whether a job's config.json (or a TrainConfig dict) describes a fine-tuned model."""
    train = config.get("train", config)
    return bool(isinstance(train, dict) and train.get("finetune"))


# -- the backbone ---------------------------------------------------------------------------------

def backbone_for(spec: Finetune):
    """The backbone plugin, checked to take part in fine-tuning."""
    from sercli.core import plugins as pl

    backbone = pl.create("backbone", spec.backbone, spec.backbone_options)
    missing = [m for m in ("trainable_module", "layer_modules") if not _defines(backbone, m)]
    if missing or getattr(backbone, "level", "frame") != "frame":
        raise SercliError(f"backbone {spec.backbone!r} cannot be fine-tuned (it exposes no trainable encoder): "
                          "extract features with it and train on those")
    if spec.mode == "lora" and not getattr(backbone, "lora_targets", ()):
        raise SercliError(f"backbone {spec.backbone!r} names no modules for LoRA: use --finetune-mode top")
    if spec.mode == "top":
        _check_layers(spec, backbone.num_layers - 1)  # hidden states: the input, then one per layer
    return backbone


def _check_layers(spec: Finetune, layers: int) -> None:
    if spec.layers > layers:
        raise SercliError(f"--finetune-layers {spec.layers}: {spec.backbone} has {layers} layers")


def _defines(backbone, member: str) -> bool:
    """Whether the backbone's class implements ``member`` (sercli.base.Backbone only declares it)."""
    from sercli.contract.features import Backbone

    impl = getattr(type(backbone), member, None)
    return callable(impl) and impl is not getattr(Backbone, member, None)


def max_samples(spec: Finetune, backbone) -> int:
    """Samples of a recording that fine-tuning reads: max_seconds, capped by the backbone's limit."""
    seconds = spec.max_seconds
    limit = getattr(backbone, "max_chunk_seconds", None)
    if limit:
        seconds = min(seconds, float(limit))
    return int(seconds * backbone.sample_rate)


def features_meta(spec: Finetune, backbone) -> dict[str, Any]:
    """The "features" of a fine-tuned run's config.json: what its inputs must be."""
    return {"kind": KIND, "sample_rate": int(backbone.sample_rate), "max_samples": max_samples(spec, backbone),
            "backbone": backbone.identity()}


def adapt(encoder, backbone, spec: Finetune) -> None:
    """Freeze ``encoder``, then make trainable what ``spec`` fine-tunes: LoRA adapters on the
    backbone's ``lora_targets`` (injected by peft, in place) or its top ``layers`` layers."""
    encoder.requires_grad_(False)
    if spec.mode == "lora":
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise SercliError("LoRA fine-tuning needs peft: pip install peft (or use --finetune-mode top)") from None
        config = LoraConfig(r=spec.lora_rank, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                            target_modules=list(backbone.lora_targets), bias="none")
        try:
            inject_adapter_in_model(config, encoder)
        except ValueError as exc:  # no module of that name
            raise SercliError(f"LoRA on {spec.backbone}: {str(exc).splitlines()[0]}") from None
        for name, param in encoder.named_parameters():
            param.requires_grad_("lora_" in name)
        return
    layers = backbone.layer_modules()
    _check_layers(spec, len(layers))
    for module in layers[-spec.layers:]:
        module.requires_grad_(True)


# -- the model --------------------------------------------------------------------------------------

def _model_class():
    import torch
    from torch import nn

    class FinetuneModel(nn.Module):
        """A backbone's encoder and a head, trained as one (the head contract of sercli.learning.model)."""

        def __init__(self, backbone, encoder: nn.Module, head: nn.Module, spec: Finetune):
            super().__init__()
            self.encoder, self.head = encoder, head
            self.backbone, self.spec = backbone, spec
            self.config = head.config  # the head's: rebuilt from config.json as a frozen run's
            self.embed_dim = head.embed_dim

        @property
        def classifier(self) -> nn.Module:
            return self.head.classifier

        @property
        def mean(self):
            return self.head.mean

        @property
        def std(self):
            return self.head.std

        def layer_weights(self):
            return self.head.layer_weights()

        def hidden(self, x, lengths):
            """(B, 1, S, 1) waveforms, (B,) lengths in samples -> (B, L, T, D) hidden states
            (float32) and (B,) lengths in frames."""
            device = x.device
            wavs = [x[b, 0, :n, 0].detach().float().cpu().numpy() for b, n in enumerate(lengths.tolist())]
            # bfloat16 needs no loss scaling; the head then runs in float32
            amp = self.spec.amp and device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
                feats = self.backbone.forward(wavs, str(device))
            frames = [int(f.shape[1]) for f in feats]
            if min(frames) < 1:
                raise SercliError("an input is too short for the backbone (no frame): leave such records out")
            longest = max(frames)
            h = torch.stack([nn.functional.pad(f.float(), (0, 0, 0, longest - f.shape[1])) for f in feats])
            return h, torch.tensor(frames, device=device)

        def embed(self, x, lengths):
            h, frames = self.hidden(x, lengths)
            return self.head.embed(h, frames)

        def forward(self, x, lengths):
            return self.classifier(self.embed(x, lengths))

        def param_groups(self, lr: float) -> list[dict[str, Any]]:
            """AdamW groups: the encoder's trainable tensors at backbone_lr, the head at ``lr``."""
            encoder = [p for p in self.encoder.parameters() if p.requires_grad]
            return [{"params": encoder, "lr": self.spec.backbone_lr}, {"params": list(self.head.parameters()), "lr": lr}]

        def saved_state(self) -> dict[str, Any]:
            """What a run folder keeps: the encoder's trainable tensors and the whole head."""
            state = {ENCODER + n: p for n, p in self.encoder.named_parameters() if p.requires_grad}
            state.update({HEAD + k: v for k, v in self.head.state_dict().items()})
            return {k: v.detach().cpu().contiguous() for k, v in state.items()}

        def load_saved_state(self, state: dict[str, Any]) -> None:
            """Put ``saved_state`` tensors back; ValueError unless they are exactly the
            trainable encoder tensors and the head, shapes included."""
            params = {n: p for n, p in self.encoder.named_parameters() if p.requires_grad}
            want = {ENCODER + n for n in params} | {HEAD + k for k in self.head.state_dict()}
            missing, unused = sorted(want - set(state)), sorted(set(state) - want)
            if missing or unused:
                raise ValueError(f"{len(missing)} tensors missing (e.g. {missing[:1]}), "
                                 f"{len(unused)} not used (e.g. {unused[:1]})")
            with torch.no_grad():
                for name, param in params.items():
                    value = state[ENCODER + name]
                    if value.shape != param.shape:
                        raise ValueError(f"{name}: shape {tuple(value.shape)}, the model has {tuple(param.shape)}")
                    param.copy_(value)
            self.head.load_state_dict({k[len(HEAD):]: v for k, v in state.items() if k.startswith(HEAD)})

    return FinetuneModel


_CLASS = None


def model_class():
    """The FinetuneModel class (an nn.Module subclass, made on first use)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _model_class()
    return _CLASS


# -- a fresh model, its statistics, and a saved one -------------------------------------------------

_stats: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, int]] = {}


def frozen_stats(backbone, encoder, data: AudioExamples, device: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer, per-dimension mean and std over the frames of (up to STATS_ITEMS of) ``data``,
    from the backbone as loaded (frozen, eval mode, no gradients). Per-record sums are kept for
    the process, so the folds and seeds of a cross-validation run each record once."""
    import torch

    who = json.dumps(backbone.identity(), sort_keys=True) + f"|{data.max_samples}"
    idx = np.random.default_rng(seed).permutation(len(data))[:STATS_ITEMS]
    todo = [int(i) for i in idx if (who, str(data.records[i]["audio"])) not in _stats]
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        for i in todo:
            f = backbone.forward([data.features(i)[0, :, 0]], device)[0].double().cpu().numpy()
            _stats[(who, str(data.records[i]["audio"]))] = (f.sum(1), (f ** 2).sum(1), f.shape[1])
    encoder.train(was_training)
    parts = [_stats[(who, str(data.records[int(i)]["audio"]))] for i in idx]
    n = sum(p[2] for p in parts)
    mean = sum(p[0] for p in parts) / n
    std = np.sqrt(np.maximum(sum(p[1] for p in parts) / n - mean ** 2, 1e-10))
    return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)


def new_model(spec: Finetune, stats_from: AudioExamples, build_head: Callable[[int, int], Any], *,
              seed: int, device: str = "cpu", standardize: bool = True):
    """A fresh FinetuneModel: the backbone loaded anew, the head from ``build_head(num_layers,
    dim)`` standardised with the frozen encoder's statistics on ``stats_from`` (training data
    only), then the adapters or the unfrozen layers of ``spec``. The caller seeds first."""
    import torch

    backbone = backbone_for(spec)
    encoder = backbone.trainable_module(device)
    encoder.requires_grad_(False)
    with torch.no_grad():  # the geometry: (layers, frames, dim) of one second
        probe = backbone.forward([np.zeros(backbone.sample_rate, dtype=np.float32)], device)[0]
    head = build_head(int(probe.shape[0]), int(probe.shape[2]))
    if standardize:
        mean, std = frozen_stats(backbone, encoder, stats_from, device, seed)
        head.mean.copy_(torch.from_numpy(mean))
        head.std.copy_(torch.from_numpy(std))
    adapt(encoder, backbone, spec)
    model = model_class()(backbone, encoder, head, spec).to(device)
    trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    total = sum(p.numel() for p in encoder.parameters())
    info(f"fine-tuning {spec.backbone} ({spec.mode}): {trainable:,} of {total:,} encoder parameters learn")
    return model


def trainer_model(trainer, stats_from: AudioExamples):
    """`sercli.learning.train.Trainer.new_model` for a fine-tuning TrainConfig: the configured head on
    the encoder, the same seed giving the same model."""
    from sercli.learning.heads import build_head, seed_everything

    cfg = trainer.cfg
    seed_everything(cfg.seed)
    return new_model(parse(cfg.finetune), stats_from,
                     lambda L, D: build_head(cfg.head, cfg.head_options, L, D, len(trainer.labels)),
                     seed=cfg.seed, device=cfg.device, standardize=cfg.standardize)


def run_inputs(finetune: dict[str, Any]) -> tuple[Callable[..., AudioExamples], dict[str, Any]]:
    """(build, meta) for `sercli.runs.jobs`: ``build(records, label_index, domain)`` in place of
    `Examples.build`, and the "features" a fine-tuned job's config.json records."""
    spec = parse(finetune)
    meta = features_meta(spec, backbone_for(spec))
    return (lambda records, index, domain: examples(records, index, domain, meta)), meta


def load(head, config: dict[str, Any], state: dict[str, Any], device: str = "cpu"):
    """The FinetuneModel of a job's config.json, with its saved tensors (ValueError if they do
    not fit); warns when the backbone now reports another identity than at training."""
    spec = parse(config["train"]["finetune"])
    backbone = backbone_for(spec)
    trained = (config.get("features") or {}).get("backbone")
    if trained is not None and backbone.identity() != trained:
        warn(f"backbone {spec.backbone!r} now reports {json.dumps(backbone.identity(), sort_keys=True)}; the model "
             f"was fine-tuned from {json.dumps(trained, sort_keys=True)}: predictions may drift")
    encoder = backbone.trainable_module(device)
    adapt(encoder, backbone, spec)
    model = model_class()(backbone, encoder, head, spec)
    model.load_saved_state(state)
    return model.to(device).eval()

