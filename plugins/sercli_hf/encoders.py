"""How each family of transformers speech models turns waveforms into hidden states.

A ``SpeechEncoder`` knows one family: its frame geometry, whether padding changes its output,
and how to run a batch. ``HFBackbone`` picks the class from the checkpoint's
``config.model_type`` (``ENCODERS``), so ``hf:ANY_ID`` works for every registered family.
To add a family (e.g. a Whisper encoder: log-mel input from ``WhisperFeatureExtractor``,
``model.encoder`` hidden states, frames past the end of the recording dropped), subclass
``SpeechEncoder`` and call ``register_encoder``. Nothing here imports torch at module level.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np

from sercli.core.errors import SercliError

ENCODERS: dict[str, type["SpeechEncoder"]] = {}


def register_encoder(cls: type["SpeechEncoder"]) -> type["SpeechEncoder"]:
    for model_type in cls.model_types:
        ENCODERS[model_type] = cls
    return cls


def encoder_for(config, feature_extractor) -> "SpeechEncoder":
    cls = ENCODERS.get(config.model_type)
    if cls is None:
        raise SercliError(
            f"model type {config.model_type!r} is not a supported speech encoder "
            f"(supported: {', '.join(sorted(ENCODERS))})"
        )
    return cls(config, feature_extractor)


class SpeechEncoder:
    """One model family. Built from the config (cheap); ``load`` fetches the weights."""

    model_types: ClassVar[tuple[str, ...]] = ()
    max_chunk_seconds: ClassVar[float | None] = None  # the longest input the model accepts

    def __init__(self, config, feature_extractor=None):
        self.config = config
        self.feature_extractor = feature_extractor
        self.model = None

    @property
    def sample_rate(self) -> int:
        return int(getattr(self.feature_extractor, "sampling_rate", None) or 16000)

    @property
    def num_layers(self) -> int:
        """Hidden states returned: the transformer's input plus one per layer."""
        return self.config.num_hidden_layers + 1

    @property
    def hop_samples(self) -> int:
        raise NotImplementedError

    def num_frames(self, n_samples: int) -> int:
        raise NotImplementedError

    @property
    def padding_sensitive(self) -> bool:
        return True

    def load(self, source: str, revision: str | None, device: str, trainable: bool = False) -> None:
        """Load the weights. ``trainable``: for fine-tuning, as transformers builds the model
        (plain nn.Linear for peft, no CPU rewrites) and without LayerDrop (a skipped layer
        would drop one of the hidden states the head weighs)."""
        from pathlib import Path

        from transformers import AutoModel
        from transformers.utils import logging

        if Path(source).is_dir():  # nothing to download: its bar would only tear through sercli's
            logging.disable_progress_bar()
        self.model = AutoModel.from_pretrained(source, revision=revision).eval().to(device)
        if trainable:
            for name in ("layerdrop", "encoder_layerdrop"):
                if getattr(self.model.config, name, 0.0):
                    setattr(self.model.config, name, 0.0)
        elif device == "cpu":
            from sercli_hf.cpu import onednn_linears

            onednn_linears(self.model)

    def layer_modules(self) -> list[Any]:
        """The loaded model's modules that compute hidden state i + 1 from hidden state i
        (``num_layers - 1`` of them, bottom to top): its transformer layers, the last one
        together with a norm applied after it."""
        raise NotImplementedError

    def forward(self, wavs: list[np.ndarray], device: str) -> list[Any]:
        """1-D float32 waveforms -> one (layers, frames, dim) tensor each, padding removed."""
        raise NotImplementedError

    def export_module(self) -> Any:
        """``forward`` for one (1, samples) tensor as a traceable module (sercli_hf.export);
        the weights loaded with ``trainable=True`` (as transformers builds them)."""
        raise NotImplementedError


@register_encoder
class SSLEncoder(SpeechEncoder):
    """wav2vec 2.0, HuBERT, WavLM and data2vec-audio: a conv feature encoder on raw audio
    (20 ms frames at 16 kHz) under a transformer with a convolutional position embedding."""

    model_types = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")

    @property
    def hop_samples(self) -> int:
        return math.prod(self.config.conv_stride)

    def num_frames(self, n_samples: int) -> int:
        # torch.nn.Conv1d without padding, layer after layer (= _get_feat_extract_output_lengths)
        n = n_samples
        for kernel, stride in zip(self.config.conv_kernel, self.config.conv_stride):
            n = (n - kernel) // stride + 1
            if n < 1:
                return 0
        return n

    @property
    def padding_sensitive(self) -> bool:
        """Padding changes real frames when the first conv layer's GroupNorm takes its
        statistics over the padded length (wav2vec2-base, HuBERT base, WavLM base/base-plus:
        feat_extract_norm == "group"), and in data2vec-audio, whose position embedding
        stacks convolutions without re-masking, so padded frames leak into real ones.
        Those models are never padded; the rest get an attention mask."""
        return self.config.model_type == "data2vec-audio" or getattr(self.config, "feat_extract_norm", "") == "group"

    @property
    def normalize(self) -> bool:
        """Zero mean, unit variance per input when the preprocessor config says so
        (transformers' default when a checkpoint ships none)."""
        return bool(getattr(self.feature_extractor, "do_normalize", True))

    def load(self, source: str, revision: str | None, device: str, trainable: bool = False) -> None:
        super().load(source, revision, device, trainable)
        _fold_weight_norm(self.model)
        if device == "cpu" and not trainable:
            from sercli_hf.cpu import tile_feature_encoder

            tile_feature_encoder(self.model, self.config)

    def layer_modules(self) -> list[Any]:
        from torch import nn

        encoder = self.model.encoder
        layers = list(encoder.layers)
        # pre-LN ("stable layer norm") encoders normalise the last layer's output; post-LN
        # ones normalise the input of the first layer (part of hidden state 0)
        if type(encoder).__name__.endswith("StableLayerNorm"):
            layers[-1] = nn.ModuleList([layers[-1], encoder.layer_norm])
        return layers

    def forward(self, wavs: list[np.ndarray], device: str) -> list[Any]:
        import torch

        lengths = torch.tensor([len(w) for w in wavs])
        x = torch.zeros(len(wavs), int(lengths.max()))
        for i, w in enumerate(wavs):
            x[i, : len(w)] = torch.from_numpy(w)
        x = x.to(device)
        valid = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(device)
        if self.normalize:
            x = _normalize(x, valid, lengths.to(device))
        # Equal lengths need no mask; for unequal ones a mask is only correct (and only given)
        # for padding-insensitive models: HFBackbone never pads the others.
        mask = None if bool(valid.all()) else valid.long()
        with warnings.catch_warnings():
            # WavLM hands torch a bool padding mask with a float position bias; torch warns
            # about the mix on every call, and nothing here can change it.
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            out = self.model(x, attention_mask=mask, output_hidden_states=True)
        hidden = torch.stack(out.hidden_states)  # (layers, batch, frames, dim)
        frames = [self.num_frames(int(n)) for n in lengths]
        return [hidden[:, i, :n] for i, n in enumerate(frames)]

    def export_module(self) -> Any:
        from sercli_hf.export import SSLModule

        return SSLModule(self.model, self.normalize)


def _normalize(x, valid, lengths):
    """Per-row zero mean, unit variance over the real samples; padding stays 0 (as
    Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm does)."""
    n = lengths[:, None].to(x.dtype)
    mean = (x * valid).sum(1, keepdim=True) / n
    var = (((x - mean) * valid) ** 2).sum(1, keepdim=True) / n
    return (x - mean) / (var + 1e-7).sqrt() * valid


def _fold_weight_norm(model) -> None:
    """The position convolution is weight-normalised: without folding, every forward pass
    recomputes its (dim x dim/groups x 128) weight from the two parametrisation tensors."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
