"""CTranslate2 Whisper checkpoints converted to transformers, for the offline Whisper backbones.

No model hub is reachable, but pip packages ship OpenAI's Whisper models as CTranslate2 float16
``model.bin`` files (which ones, and the cache: ``sercli_hf.whisper_wheels``). This module
reads that file's binary layout directly (the writer is ``ctranslate2/specs/model_spec.py:
ModelSpec._serialize``), renames the weights to transformers' ``WhisperForConditionalGeneration`` layout, and saves a folder that
``WhisperModel.from_pretrained(dir)`` (or ``AutoModel``) loads with no missing weights; use its
``.encoder`` / ``get_encoder()``. The decoder is converted too, because a checkpoint without it
makes transformers initialise ~29M random parameters and print a long "MISSING" report on every
load. ctranslate2 itself is not needed here (it is a test dependency, used to check the result).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sercli.core.errors import SercliError

# What ctranslate2 4.x writes (CURRENT_BINARY_VERSION, WhisperSpec.name, WhisperSpec.revision):
# the variable names mapped below are only known to hold for this combination.
BINARY_VERSION = 6
SPEC_NAME = "WhisperSpec"
SPEC_REVISION = 3
# Index = the type id written by model_spec._dtype_to_type_id (ctranslate2's DataType enum).
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")

WEIGHTS_NAME = "model.safetensors"


@dataclass
class Ct2Model:
    """The content of a CTranslate2 ``model.bin``: variables by name, aliases resolved on get."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int:
        return int(self[name].reshape(()))


def read_ct2_model(path: Path | Sequence[Path]) -> Ct2Model:
    """Parse a CTranslate2 model.bin, or the parts of one to join in order (little-endian, as
    written by ModelSpec._serialize):

    u32 binary_version, string spec_name, u32 revision, u32 n_variables,
    n x (string name, u8 rank, rank x u32 dim, u8 dtype_id, u32 n_bytes, raw bytes),
    u32 n_aliases, n x (string alias, string target);
    string = u16 length including a trailing NUL, utf-8 bytes, NUL.
    """
    parts = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    path = parts[0] if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} parts)"
    data = memoryview(parts[0].read_bytes() if len(parts) == 1 else b"".join(p.read_bytes() for p in parts))
    pos = 0
    n_variables = done = 0

    def unpack(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string() -> str:
        nonlocal pos
        length = unpack("H")
        text = bytes(data[pos : pos + length - 1]).decode("utf-8")
        pos += length
        return text

    try:
        version = unpack("I")
        if version != BINARY_VERSION:
            raise SercliError(
                f"{path}: CTranslate2 binary version {version} is not supported "
                f"(this converter reads version {BINARY_VERSION})"
            )
        model = Ct2Model(version, string(), unpack("I"))
        n_variables = unpack("I")
        for done in range(n_variables):
            name = string()
            shape = [unpack("I") for _ in range(unpack("B"))]
            dtype = _DTYPES[unpack("B")]
            nbytes = unpack("I")
            raw = data[pos : pos + nbytes]
            if len(raw) < nbytes:
                raise ValueError(f"the file ends inside variable {done + 1} of {n_variables}, {name}")
            pos += nbytes
            model.variables[name] = _decode(raw, dtype).reshape(shape)
        for _ in range(unpack("I")):
            alias = string()
            model.aliases[alias] = string()
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise SercliError(f"{path}: not a readable CTranslate2 model.bin ({exc})") from exc
    if pos != len(data):
        raise SercliError(f"{path}: {len(data) - pos} unexpected trailing bytes after the aliases")
    return model


def _decode(raw: memoryview, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        # numpy has no bfloat16: it is the upper half of a float32.
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))


def _num_layers(model: Ct2Model, scope: str) -> int:
    pattern = re.compile(rf"^{scope}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for m in map(pattern.match, model.variables) if m)


def whisper_config(model: Ct2Model, ct2_config: dict | None = None, vocabulary: list[str] | None = None):
    """A transformers WhisperConfig whose sizes are read off the CTranslate2 variables' shapes,
    and its special token ids off the vocabulary (they differ between English-only and
    multilingual models; without one, transformers' defaults, which are tiny.en's)."""
    from transformers import WhisperConfig

    conv1 = model["encoder/conv1/weight"]  # (d_model, num_mel_bins, kernel)
    embeddings = model["decoder/embeddings/weight"]  # (vocab, d_model)
    # Generation defaults that the CTranslate2 converter copied from the original config.
    ct2_config = ct2_config or {}
    extra = {
        "suppress_tokens": ct2_config.get("suppress_ids"),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin"),
    }
    if vocabulary and "<|endoftext|>" in vocabulary and "<|startoftranscript|>" in vocabulary:
        eot = vocabulary.index("<|endoftext|>")
        extra.update(bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
                     decoder_start_token_id=vocabulary.index("<|startoftranscript|>"))
    return WhisperConfig(
        vocab_size=embeddings.shape[0],
        num_mel_bins=conv1.shape[1],
        d_model=conv1.shape[0],
        encoder_layers=_num_layers(model, "encoder"),
        encoder_attention_heads=model.scalar("encoder/num_heads"),
        encoder_ffn_dim=model["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=model["encoder/position_encodings/encodings"].shape[0],
        decoder_layers=_num_layers(model, "decoder"),
        decoder_attention_heads=model.scalar("decoder/num_heads"),
        decoder_ffn_dim=model["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_target_positions=model["decoder/position_encodings/encodings"].shape[0],
        architectures=["WhisperForConditionalGeneration"],
        **{k: v for k, v in extra.items() if v is not None},
    )


def whisper_state_dict(model: Ct2Model) -> dict[str, np.ndarray]:
    """CTranslate2 WhisperSpec variables -> WhisperForConditionalGeneration parameters (float32).

    Inverse of ctranslate2.converters.transformers.WhisperLoader: CT2 fuses q/k/v (self-attention)
    and k/v (cross-attention) into one linear, filling the bias-less k_proj's slot with zeros;
    layer norms are gamma/beta; the output projection is an alias of the token embeddings (tied).
    """
    if model.spec != SPEC_NAME or model.revision != SPEC_REVISION:
        raise SercliError(
            f"expected a CTranslate2 {SPEC_NAME} revision {SPEC_REVISION}, "
            f"got {model.spec} revision {model.revision}"
        )
    quantized = [name for name in model.variables if name.endswith("/weight_scale")]
    if quantized:
        raise SercliError(
            f"quantized CTranslate2 weights ({quantized[0]}) are not supported; "
            "use a float16/float32 model"
        )

    out: dict[str, np.ndarray] = {}

    def put(key: str, value: np.ndarray) -> None:
        out[key] = np.ascontiguousarray(value, dtype=np.float32)

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", model[f"{src}/weight"])
        put(f"{dst}.bias", model[f"{src}/bias"])

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", model[f"{src}/gamma"])
        put(f"{dst}.bias", model[f"{src}/beta"])

    def split(dst: str, src: str, names: tuple[str, ...]) -> None:
        weights = np.split(model[f"{src}/weight"], len(names))
        biases = np.split(model[f"{src}/bias"], len(names))
        for name, weight, bias in zip(names, weights, biases):
            put(f"{dst}.{name}.weight", weight)
            if name == "k_proj":
                # Whisper's key projection has no bias; the converter stored zeros there.
                if np.any(bias):
                    raise SercliError(f"{src}: the fused key bias is not zero")
            else:
                put(f"{dst}.{name}.bias", bias)

    for side in ("encoder", "decoder"):
        put(f"model.{side}.embed_positions.weight", model[f"{side}/position_encodings/encodings"])
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(_num_layers(model, side)):
            dst, src = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    put("model.decoder.embed_tokens.weight", model["decoder/embeddings/weight"])
    # proj_out is tied to embed_tokens in transformers; only save it if CT2 says it differs.
    if not np.array_equal(model["decoder/projection/weight"], model["decoder/embeddings/weight"]):
        raise SercliError("decoder/projection/weight differs from the token embeddings (untied)")
    return out


def convert_ct2_whisper_encoder(
    model_bin: Path | Sequence[Path], out_dir: Path, ct2_config: dict | None = None,
    vocabulary: list[str] | None = None,
) -> Path:
    """Convert a CTranslate2 Whisper ``model.bin`` (or its parts, in order) into a transformers
    folder: config.json, model.safetensors (float32) and the WhisperFeatureExtractor's
    preprocessor_config.json. ``ct2_config`` is CTranslate2's config.json (default: the one
    next to a single model.bin). ``out_dir`` must not exist yet or be empty.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperFeatureExtractor

    out_dir = Path(out_dir)
    model = read_ct2_model(model_bin)
    if ct2_config is None and isinstance(model_bin, (str, Path)):
        ct2_config_path = Path(model_bin).with_name("config.json")
        ct2_config = json.loads(ct2_config_path.read_text()) if ct2_config_path.is_file() else None
    config = whisper_config(model, ct2_config, vocabulary)
    tensors = {k: torch.from_numpy(v) for k, v in whisper_state_dict(model).items()}

    out_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out_dir)
    save_file(tensors, out_dir / WEIGHTS_NAME, metadata={"format": "pt"})
    # Whisper's defaults (16 kHz, 25 ms window, 10 ms hop, 30 s chunks) with this model's mel bins.
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out_dir)
    return out_dir
