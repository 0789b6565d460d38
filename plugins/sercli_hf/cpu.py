"""Faster float32 inference on CPU for the loaded transformers models, with the same results.

Both rewrites keep the model's parameters and change only how the same sums are computed,
so features differ from transformers' own by float rounding (tests compare them):

- ``onednn_linears``: torch sends a float32 ``nn.Linear`` on CPU to MKL's sgemm. On this
  project's machine (AMD EPYC, AVX-512) that reaches 98 GFLOP/s on one core where oneDNN,
  already torch's convolution library, reaches 217 on the same product (MKL is known to
  pick slower kernels on CPUs that are not Intel's).
- ``tile_feature_encoder``: the conv feature encoder of wav2vec 2.0 and its kin turns each
  second of audio into 3200 frames of 512 channels, then halves the frame rate layer by
  layer. Run whole, each layer's input and output (tens of MB for a few seconds) fall out
  of the CPU caches between layers; run in tiles of output frames they stay in cache.

Measured on one core with a base-size wav2vec2 (group norm) and an 8 s input: 1.20 s per
forward pass with transformers as it comes, 0.82 s with oneDNN linears, 0.67 s with the
tiled encoder as well (the encoder alone: 0.32 s whole, 0.21 s tiled).

This module imports torch; sercli_hf imports it only when a model loads on the CPU.
"""

from __future__ import annotations

import math
import platform

import torch
from torch import nn
from torch.nn import functional as F


class OneDNNLinear(nn.Linear):
    """An nn.Linear (the same parameter tensors) whose float32 CPU product is oneDNN's.
    Under autocast, for other dtypes or devices, or where gradients are wanted it does what
    nn.Linear does."""

    def __init__(self, linear: nn.Linear):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x):
        if (x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_autocast_enabled("cpu")
                or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))):
            return F.linear(x, self.weight, self.bias)
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.weight, self.bias, "none", [], "")
        return y.reshape(*x.shape[:-1], self.out_features)


def onednn_linears(model: nn.Module) -> int:
    """Swap every plain nn.Linear in ``model`` for a OneDNNLinear; returns how many. Only on
    x86-64: measured on an AMD CPU, and oneDNN is Intel's own tuned library on Intel ones;
    other CPUs keep torch's default."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not _onednn_linear_works():
        return 0
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, OneDNNLinear(child))
                swapped += 1
    return swapped


def _onednn_linear_works() -> bool:
    """Whether this torch has the (private) oneDNN linear op and it gives nn.Linear's result."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    gen = torch.Generator().manual_seed(0)  # leaves torch's global random state alone
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((7, 16), (5, 16), (5,)))
    try:
        with torch.inference_mode():
            y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    except (RuntimeError, TypeError):
        return False
    return torch.allclose(y, F.linear(x, w, b), atol=1e-5, rtol=1e-5)


class TiledConvStack:
    """A feature encoder's ``conv_layers`` run in tiles of ``tile`` output frames.

    The layers are unpadded convolutions with per-frame norms, so output frame j depends only
    on samples [j * hop, j * hop + field): tiles of the waveform that overlap by
    ``field - hop`` samples give exactly the whole run's frames. The exception is the first
    layer of wav2vec2-base and its kin, whose GroupNorm normalises each channel over all
    frames. Its statistics follow from the waveform's windows without running the layer:
    for channel weights w and bias b, the mean is w.m + b and the variance w C w' for the
    windows' mean m and covariance C. Folded into the convolution's weights, they make the
    normalised first layer one convolution per input, which then runs tile by tile too.
    """

    def __init__(self, conv_layers: nn.ModuleList, kernels, strides, tile: int):
        self.layers, self.tile = conv_layers, tile
        self.hop = math.prod(strides)
        self.field = 1
        for kernel, stride in zip(reversed(kernels), reversed(strides)):
            self.field = (self.field - 1) * stride + kernel
        self.fold_first = isinstance(getattr(conv_layers[0], "layer_norm", None), nn.GroupNorm)

    @staticmethod
    def supports(conv_layers: nn.ModuleList) -> bool:
        """Whether the only frame-spanning norm is a per-channel GroupNorm in the first layer
        on a one-channel, unpadded, ungrouped convolution (as in every released checkpoint)."""
        for i, layer in enumerate(conv_layers):
            conv = getattr(layer, "conv", None)
            if not isinstance(conv, nn.Conv1d) or conv.padding != (0,) or conv.dilation != (1,) or conv.groups != 1:
                return False
            norms = [m for m in layer.modules() if isinstance(m, nn.GroupNorm)]
            if norms and (i > 0 or conv.in_channels != 1 or norms != [getattr(layer, "layer_norm", None)]
                          or norms[0].num_groups != norms[0].num_channels):
                return False
        return True

    def __call__(self, input_values):
        batch, samples = input_values.shape
        frames = (samples - self.field) // self.hop + 1
        layers = self.layers
        if self.fold_first:
            first, layers = layers[0], layers[1:]
            weight, bias = self._folded_first(input_values)
            stride = first.conv.stride[0]
        tiles = []
        for start in range(0, frames, self.tile):
            stop = min(frames, start + self.tile)
            hidden = input_values[:, start * self.hop : (stop - 1) * self.hop + self.field]
            if self.fold_first:  # one group per input: its own folded weights
                hidden = F.conv1d(hidden[None], weight, bias, stride=stride, groups=batch)
                hidden = first.activation(hidden.view(batch, -1, hidden.shape[-1]))
            else:
                hidden = hidden[:, None]
            for layer in layers:
                hidden = layer(hidden)
            tiles.append(hidden)
        return torch.cat(tiles, dim=-1)

    def _folded_first(self, x):
        """The first layer's convolution and GroupNorm as one convolution per row of ``x``:
        weights (batch * channels, 1, kernel) and biases (batch * channels)."""
        conv, norm = self.layers[0].conv, self.layers[0].layer_norm
        channels, _, kernel = conv.weight.shape
        windows = x.unfold(-1, kernel, conv.stride[0]).double()  # (batch, frames, kernel)
        mean = windows.mean(1)
        cov = windows.transpose(1, 2) @ windows / windows.shape[1] - mean[:, :, None] * mean[:, None, :]
        w = conv.weight.double().view(channels, kernel)
        b = conv.bias.double() if conv.bias is not None else w.new_zeros(channels)
        mu = mean @ w.T + b  # (batch, channels)
        var = ((w @ cov) * w).sum(-1)
        scale = norm.weight.double() / torch.sqrt(var + norm.eps)
        weight = (w * scale[..., None]).float().reshape(-1, 1, kernel)
        bias = ((b - mu) * scale + norm.bias.double()).float().reshape(-1)
        return weight, bias


def tile_feature_encoder(model: nn.Module, config, tile: int = 50) -> bool:
    """Run ``model.feature_extractor`` (wav2vec2, HuBERT, WavLM, data2vec-audio) in tiles of
    ``tile`` output frames (1 s); False where the model has no such encoder."""
    encoder = getattr(model, "feature_extractor", None)
    layers = getattr(encoder, "conv_layers", None)
    kernels, strides = list(getattr(config, "conv_kernel", ())), list(getattr(config, "conv_stride", ()))
    if (not isinstance(layers, nn.ModuleList) or len(layers) != len(kernels) or len(kernels) != len(strides)
            or not TiledConvStack.supports(layers)):
        return False
    # the encoder keeps its modules, names and parameters; only its forward changes
    encoder.forward = TiledConvStack(layers, kernels, strides, tile)
    return True
