"""The transformers backbones as torch modules for `sercli export` (``Backbone.export_module``).

Each module takes one waveform as a ``(1, samples)`` float32 tensor and returns what
``HFBackbone.forward([wav])[0]`` returns: ``(layers, frames, dim)`` hidden states. They run the
model as transformers builds it (no CPU rewrites), with torch operations only, so that
``torch.export`` follows them with the number of samples dynamic (the STFT as
``sercli.api.PowerSpectrum``, which onnxruntime computes as accurately as torch):

- ``SSLModule`` (wav2vec 2.0, HuBERT, WavLM, data2vec-audio): the per-input normalisation the
  feature extractor applies (when its config says so), then the model, no mask (one input).
- ``WhisperModule``: Whisper's log-mel front end (the feature extractor's STFT, its mel
  filters, log10, the 8-decade floor, scaling) on the waveform padded to whole frames
  (``cut``) or to 30 s (``padded``), the conv stem, the position table cut to the frames,
  every layer, and the frames past the end dropped.
"""

from __future__ import annotations

import torch
from torch import nn


class SSLModule(nn.Module):
    def __init__(self, model, normalize: bool):
        super().__init__()
        self.model, self.normalize = model, normalize

    def forward(self, wav):
        x = wav
        if self.normalize:  # sercli_hf.encoders._normalize with every sample real
            mean = x.mean(1, keepdim=True)
            var = ((x - mean) ** 2).mean(1, keepdim=True)
            x = (x - mean) / (var + 1e-7).sqrt()
        out = self.model(x, output_hidden_states=True)
        return torch.stack(out.hidden_states)[:, 0]


class WhisperModule(nn.Module):
    def __init__(self, encoder, feature_extractor, padded_samples: int | None):
        super().__init__()
        fe = feature_extractor
        if getattr(fe, "dither", 0.0):
            raise NotImplementedError("the feature extractor dithers its input")
        from sercli.api import PowerSpectrum

        self.encoder = encoder
        self.register_buffer("mel_filters", torch.from_numpy(fe.mel_filters).float())
        self.power = PowerSpectrum(fe.n_fft, fe.hop_length, torch.hann_window(fe.n_fft))
        self.frame = fe.hop_length * encoder.conv2.stride[0] * encoder.conv1.stride[0]  # samples per frame
        self.padded = padded_samples

    def forward(self, wav):
        n = wav.shape[1]
        frames = (n + self.frame - 1) // self.frame  # WhisperSpeechEncoder.num_frames
        total = self.padded if self.padded else frames * self.frame
        x = nn.functional.pad(wav, (0, total - n))
        # WhisperFeatureExtractor._torch_extract_fbank_features (its torch.stft as PowerSpectrum)
        magnitudes = self.power(x)[:, :-1]
        log_spec = torch.clamp(self.mel_filters.T @ magnitudes, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        mel = ((log_spec + 4.0) / 4.0)[None]  # (1, mel bins, mel frames)
        enc = self.encoder  # transformers' WhisperEncoder.forward, positions cut to the input
        h = nn.functional.gelu(enc.conv1(mel))
        h = nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)
        h = h + enc.embed_positions.weight[: h.shape[1]]
        states = [h]
        for i, layer in enumerate(enc.layers):
            h = layer(h, None)
            h = h[0] if isinstance(h, tuple) else h
            states.append(enc.layer_norm(h) if i == len(enc.layers) - 1 else h)
        return torch.stack(states)[:, 0, :frames]
