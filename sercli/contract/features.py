"""The backbone family (`sercli extract --backbone NAME`, hook ``register_backbones``)."""

from __future__ import annotations

from typing import Any, ClassVar

from sercli.contract.common import Plugin


class Backbone(Plugin):
    """Turns waveforms into features shaped (layers, frames, dim).

    Utterance-level extractors return frames == 1.

    Errors, as extraction (sercli.features) handles them, which differs from the common
    contract in one way: in ``forward`` nothing ends the run. Whatever ``forward`` raises
    (``RecordError``, ``SercliError`` or a bug), the batch is run again one input at a time, and
    each input that still fails is reported with its id and skipped (``backbone 'NAME' failed on
    this audio: ...``); so is an input whose output is not a tensor (layers, frames, dim) with
    ``num_layers`` layers, has no frames, or holds NaN or infinity. The others are stored, and
    `extract` ends with exit status 1 (re-run it to retry the skipped ones). What ends the run,
    with one line: a ``SercliError`` from ``__init__``/``load`` (missing weights, a bad option),
    and a ``forward`` whose frames disagree with ``num_frames`` (below), which names the plugin.

    Chunking long audio (``hop_samples`` with ``num_frames``) assumes time-local features: each
    output frame must depend only on audio within ``--chunk-overlap`` / 2 of its centre
    (convolutions, windowed attention, frame-wise spectra), so that frames cut from overlapping
    chunks equal the frames of the whole recording. A model that looks at the whole input
    (global self-attention, a norm over the utterance) gives other frames near the cuts: leave
    ``hop_samples`` None (each recording goes through whole), or accept that and say so.
    """

    sample_rate: ClassVar[int] = 16000
    level: ClassVar[str] = "frame"  # "frame" or "utterance"
    # on-disk precision by default; hand-crafted functionals (energies in the 1e5 range)
    # overflow float16 and ask for float32
    store_dtype: ClassVar[str] = "float16"
    # modules a worker process needs before ``load`` (sercli.features.extract imports them once, early,
    # in the process that forks the workers, e.g. ("transformers.modeling_utils",))
    worker_modules: ClassVar[tuple[str, ...]] = ()

    # -- geometry: what sercli.features.extract plans with (a property may compute any of these) --
    # Samples of input per output frame, frame j centred near sample j * hop_samples. Declared
    # (with ``num_frames``), it lets sercli cut long recordings into hop-aligned, overlapping
    # chunks and stitch their frames into exactly the frames of the whole recording; it also
    # puts the chunk settings into the store's metadata. None: each recording goes through whole.
    hop_samples: ClassVar[int | None] = None
    # True when a waveform's features change if it is padded to a longer one in the batch
    # (a norm over the padded length, a mask the model lacks). sercli then batches only
    # segments of equal length, so batched features equal one-by-one features.
    padding_sensitive: ClassVar[bool] = False
    # The longest input (seconds) the model accepts, e.g. a position table's length: sercli
    # chunks longer recordings at most this long (below ``--chunk-seconds``). Needs ``hop_samples``.
    max_chunk_seconds: ClassVar[float | None] = None

    def num_frames(self, n_samples: int) -> int | None:
        """Frames ``forward`` returns for ``n_samples`` of audio; None when not declared
        (required with ``hop_samples``). sercli plans chunks with it and skips a recording
        that gives fewer than one frame as too short, before decoding it. When declared it is
        checked against every array ``forward`` returns: another number of frames ends the
        run with one line naming the plugin (stitching would otherwise cut frames silently)."""
        return None

    def load(self, device: str = "cpu") -> None:
        """Load weights; called once before the first batch."""

    @property
    def num_layers(self) -> int:
        return 1

    def layer_names(self) -> list[str]:
        return [str(i) for i in range(self.num_layers)]

    def forward(self, wavs: list, device: str = "cpu") -> list:
        """A batch of 1-D float32 numpy waveforms at ``sample_rate`` ->
        a list of float tensors (layers, frames, dim), one per input, frames of padding removed."""
        raise NotImplementedError

    # -- deployment (optional; `sercli export onnx RUN`, sercli.contract.export) --------------------
    def export_module(self) -> Any:
        """A torch ``nn.Module`` (fresh weights, eval mode) that computes ``forward([wav])[0]``
        for one waveform given as a ``(1, samples)`` float32 tensor: ``(layers, frames, dim)``,
        frames past the end removed, the same numbers up to float rounding. It must be
        traceable by ``torch.export`` with the number of samples dynamic: torch operations on
        the input only (no numpy, no Python branch on its length). Not defined (the default):
        runs on this backbone cannot be exported, and `sercli export` says so in one line."""
        raise NotImplementedError

    # -- fine-tuning (optional; `sercli train --finetune NAME`, sercli.learning.finetune) -------------
    # A backbone that defines ``trainable_module`` and ``layer_modules`` can be fine-tuned:
    # sercli freezes the module, then trains LoRA adapters (peft) on the Linear modules named
    # in ``lora_targets`` (e.g. ("q_proj", "v_proj")), or the top K of ``layer_modules()``,
    # together with a head. ``forward`` is then called with gradients enabled: it must let
    # them flow to the module's parameters, and give a batch the numbers its inputs get one at
    # a time (``padding_sensitive`` backbones: run unequal lengths apart).
    lora_targets: ClassVar[tuple[str, ...]] = ()

    def trainable_module(self, device: str = "cpu") -> Any:
        """Load fresh weights for training and return the torch ``nn.Module`` that ``forward``
        then runs (as the library builds it: real nn.Linear, no inference-only rewrites)."""
        raise NotImplementedError

    def layer_modules(self) -> list[Any]:
        """The loaded module's parts that compute hidden state i + 1 from hidden state i
        (``num_layers - 1`` of them, bottom to top; the last includes a norm applied after it)."""
        raise NotImplementedError
