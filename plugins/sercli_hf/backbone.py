"""The `hf` backbones: self-supervised speech models through transformers.

``hf:ID_OR_DIR`` loads any supported checkpoint with ``AutoModel.from_pretrained`` (a hub
id, or a local folder such as one written by ``save_pretrained``); the short names below are
the same class pointed at a fixed hub id. The family-specific work (frame geometry, padding,
normalisation) lives in ``sercli_hf.encoders``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import Field

from sercli.base import Backbone, Options
from sercli.core.errors import SercliError

# short name -> (hub id, what it is)
SHORT_NAMES: dict[str, tuple[str, str]] = {
    "data2vec-base": ("facebook/data2vec-audio-base", "data2vec-audio base (LibriSpeech 960 h), 12 layers, 768-d"),
    "data2vec-large": ("facebook/data2vec-audio-large", "data2vec-audio large (Libri-Light 60k h), 24 layers, 1024-d"),
    "wav2vec2-base": ("facebook/wav2vec2-base", "wav2vec 2.0 base (LibriSpeech 960 h), 12 layers, 768-d"),
    "wav2vec2-large": ("facebook/wav2vec2-large-lv60", "wav2vec 2.0 large (Libri-Light 60k h), 24 layers, 1024-d"),
    "hubert-base": ("facebook/hubert-base-ls960", "HuBERT base (LibriSpeech 960 h), 12 layers, 768-d"),
    "hubert-large": ("facebook/hubert-large-ll60k", "HuBERT large (Libri-Light 60k h), 24 layers, 1024-d"),
    "wavlm-base": ("microsoft/wavlm-base", "WavLM base (LibriSpeech 960 h), 12 layers, 768-d"),
    "wavlm-base-plus": ("microsoft/wavlm-base-plus", "WavLM base+ (94k h), 12 layers, 768-d"),
    "wavlm-large": ("microsoft/wavlm-large", "WavLM large (94k h), 24 layers, 1024-d"),
}
PREFIX = "hf:"


class HFBackbone(Backbone):
    name = PREFIX
    description = (
        "A transformers speech model by hub id or local folder: hf:ID_OR_DIR "
        "(wav2vec 2.0, HuBERT, WavLM, data2vec-audio); hidden states of every layer, 50 frames/s."
    )
    level = "frame"
    hub_id: ClassVar[Optional[str]] = None  # set by the short-name classes
    worker_modules = ("transformers.modeling_utils", "sercli_hf.encoders", "sercli_hf.cpu")

    class Options(Options):
        revision: Optional[str] = Field(None, description="Hub branch, tag or commit to load (hub ids only).")

    def __init__(self, name: str | None = None, options=None):
        super().__init__(name, options)
        self._encoder = None
        self._fingerprint: str | None = None

    # -- which checkpoint ---------------------------------------------------------------
    def source(self) -> str:
        """The hub id or folder to load; subclasses may produce one (e.g. by converting)."""
        if self.hub_id:
            return self.hub_id
        src = self.name[len(PREFIX):] if self.name.startswith(PREFIX) else ""
        if not src:
            raise SercliError("--backbone hf: needs a hub id or a folder, e.g. hf:facebook/wav2vec2-base")
        return src

    def location(self) -> str:
        """``source()`` as from_pretrained takes it: a folder (``~`` expanded) or a hub id."""
        src = self.source()
        folder = Path(src).expanduser()
        if folder.is_dir():
            return str(folder)
        if src.startswith((".", "/", "~")):
            raise SercliError(f"backbone folder {src} does not exist")
        return src

    @property
    def encoder(self):
        """The family's SpeechEncoder, built from the config only (weights come in load)."""
        if self._encoder is None:
            from sercli_hf.encoders import encoder_for

            config, feature_extractor = _read_config(self.location(), self.options.revision)
            self._encoder = encoder_for(config, feature_extractor)
        return self._encoder

    # -- what the extraction engine reads ------------------------------------------------
    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        return self.encoder.sample_rate

    @property
    def num_layers(self) -> int:
        return self.encoder.num_layers

    @property
    def hop_samples(self) -> int:
        return self.encoder.hop_samples

    def num_frames(self, n_samples: int) -> int:
        return self.encoder.num_frames(n_samples)

    @property
    def padding_sensitive(self) -> bool:
        return self.encoder.padding_sensitive

    @property
    def max_chunk_seconds(self) -> float | None:
        return self.encoder.max_chunk_seconds

    def identity(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.location(), self.encoder.config)
        return {
            **self.provenance(),
            "source": self.source(),
            "model_type": self.encoder.config.model_type,
            "fingerprint": self._fingerprint,
        }

    # -- running -------------------------------------------------------------------------
    def load(self, device: str = "cpu") -> None:
        if self.encoder.model is None:
            self.encoder.load(self.location(), self.options.revision, device)

    # -- fine-tuning (sercli.learning.finetune) ----------------------------------------------------
    # the attention projections of every family here (LoRA's original choice: query and value)
    lora_targets: ClassVar[tuple[str, ...]] = ("q_proj", "v_proj")

    def trainable_module(self, device: str = "cpu"):
        """Fresh weights, loaded as transformers builds the model (no CPU rewrites, no
        LayerDrop): the torch module that ``forward`` then runs and fine-tuning may change."""
        self.encoder.load(self.location(), self.options.revision, device, trainable=True)
        return self.encoder.model

    def layer_modules(self) -> list:
        """The loaded model's transformer layers, bottom to top (see SpeechEncoder.layer_modules)."""
        return self.encoder.layer_modules()

    def export_module(self):
        """A fresh copy of the model as transformers builds it, in a traceable module
        (sercli_hf.export): the loaded one may have CPU rewrites torch.export cannot follow."""
        from sercli_hf.encoders import encoder_for

        config, feature_extractor = _read_config(self.location(), self.options.revision)
        encoder = encoder_for(config, feature_extractor)
        if hasattr(self.encoder, "input"):  # Whisper: cut or padded, as the option says
            encoder.input = self.encoder.input
        encoder.load(self.location(), self.options.revision, "cpu", trainable=True)
        return encoder.export_module().eval().requires_grad_(False)

    def forward(self, wavs, device: str = "cpu"):
        """Padding-sensitive models run each length on its own (sercli's batches then hold
        one length only, so this costs nothing there); the rest are padded and masked."""
        if not self.padding_sensitive or len({len(w) for w in wavs}) <= 1:
            return self.encoder.forward(wavs, device)
        out: list = [None] * len(wavs)
        for n in sorted({len(w) for w in wavs}):
            idx = [i for i, w in enumerate(wavs) if len(w) == n]
            for i, feats in zip(idx, self.encoder.forward([wavs[i] for i in idx], device)):
                out[i] = feats
        return out


def short_name_classes() -> list[type[HFBackbone]]:
    """One registered class per short name: the same backbone with its hub id fixed."""
    return [
        type(f"HF_{name}", (HFBackbone,), {"name": name, "description": f"{text} ({hub_id})", "hub_id": hub_id})
        for name, (hub_id, text) in SHORT_NAMES.items()
    ]


def _read_config(source: str, revision: str | None):
    """(config, feature extractor or None); a SercliError that says what to do if missing."""
    from transformers import AutoConfig, AutoFeatureExtractor

    try:
        config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SercliError(
            f"cannot load {source!r} ({first}); without network access, point hf: at a local "
            "copy made with save_pretrained (hf:/path/to/folder), or set HF_HUB_OFFLINE=1 to use "
            "the Hugging Face cache without retries"
        ) from None
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(source, revision=revision)
    except (OSError, ValueError):  # a checkpoint without preprocessor_config.json
        feature_extractor = None
    return config, feature_extractor


def _fingerprint(source: str, config) -> str:
    """What pins the weights: the hub commit, or for a local folder a hash of its configs
    and, per weights file, its size and first and last 4 MiB (hashing gigabytes on every
    run would cost seconds; retrained weights differ there too)."""
    folder = Path(source)
    if not folder.is_dir():
        return f"commit:{getattr(config, '_commit_hash', None) or 'unknown'}"
    h = hashlib.sha256()
    edge = 4 << 20
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix not in (".json", ".safetensors", ".bin"):
            continue
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as fh:
            h.update(fh.read(edge))
            if size > 2 * edge:
                fh.seek(-edge, 2)
            h.update(fh.read())
    return f"sha256:{h.hexdigest()[:16]}"
