"""Randomly initialised checkpoints of each supported family, saved like a real one.

No model hub is needed: tests save tiny ones and load them through ``hf:FOLDER``, exercising
the real ``from_pretrained`` path; the speed benchmark saves a base-sized one (wav2vec2-base's
shape: 12 layers, 768-d, 95M parameters). Random weights give meaningless features, but the
same shapes, costs and padding behaviour as trained ones.
"""

from __future__ import annotations

from pathlib import Path

# name -> (config class, model class, config overrides): one entry per family and feature
# encoder norm, as the real checkpoints differ (see SSLEncoder.padding_sensitive).
ARCHITECTURES = {
    "data2vec": ("Data2VecAudioConfig", "Data2VecAudioModel", {}),
    "wav2vec2-group": ("Wav2Vec2Config", "Wav2Vec2Model", {"feat_extract_norm": "group"}),
    "wav2vec2-layer": ("Wav2Vec2Config", "Wav2Vec2Model", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),
    "hubert-group": ("HubertConfig", "HubertModel", {"feat_extract_norm": "group"}),
    "hubert-layer": ("HubertConfig", "HubertModel", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),
    "wavlm-group": ("WavLMConfig", "WavLMModel", {"feat_extract_norm": "group"}),
    "wavlm-layer": ("WavLMConfig", "WavLMModel", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),
}

# Tiny: 2 layers, 32-d, 16 conv channels; the conv strides stay the real ones (20 ms frames).
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
TINY_EXTRA = {
    "data2vec": {"num_conv_pos_embeddings": 3, "conv_pos_kernel_size": 5},  # a stack of 3 convs
    "wavlm-group": {"num_buckets": 16, "max_bucket_distance": 50},
    "wavlm-layer": {"num_buckets": 16, "max_bucket_distance": 50},
}


def save_random_model(arch: str, folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random ``arch`` model (config, weights, preprocessor config) into ``folder``."""
    import torch
    import transformers

    config_name, model_name, overrides = ARCHITECTURES[arch]
    kwargs = dict(overrides)
    if size == "tiny":
        kwargs.update(TINY)
        kwargs.update(TINY_EXTRA.get(arch, {}))
    elif size != "base":  # the config classes' defaults are the base models' shapes
        raise ValueError(f"size must be tiny or base, not {size!r}")
    config = getattr(transformers, config_name)(**kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    # As the real checkpoints do: layer-norm models take an attention mask, group-norm ones not.
    transformers.Wav2Vec2FeatureExtractor(
        do_normalize=True, return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer"
    ).save_pretrained(folder)
    return folder
