"""A power spectrogram for backbones' export modules (``Backbone.export_module``):
``torch.stft`` (centred, reflect padding, one-sided) squared, computed as a strided
convolution with the windowed DFT basis.

Why not ``torch.stft`` itself: it exports to ONNX's STFT operator, which onnxruntime computes
about 30 times less accurately than torch does (measured on log-mel features against a float64
reference: 2e-3 against 6e-5), and float16 feature stores then round about one value in a
hundred to another step than `sercli predict RUN` does. The convolution runs on the same
matrix kernels in both, and stays within float32 rounding of torch.stft.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PowerSpectrum(nn.Module):
    """``(1, samples)`` -> ``(n_fft // 2 + 1, frames)`` power: ``torch.stft(wav[0], n_fft, hop,
    window=window, center=True, pad_mode="reflect", return_complex=True).abs() ** 2``."""

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        k = np.arange(n_fft // 2 + 1)[:, None]
        t = np.arange(n_fft)[None, :]
        angle = 2 * np.pi * k * t / n_fft
        w = window.double().numpy()[None, :]
        basis = np.concatenate([np.cos(angle) * w, -np.sin(angle) * w])  # real rows, then imaginary
        self.register_buffer("basis", torch.from_numpy(basis[:, None, :]).float())

    def forward(self, wav):
        x = nn.functional.pad(wav[None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        spec = nn.functional.conv1d(x, self.basis, stride=self.hop)[0]
        re, im = spec.chunk(2, dim=0)
        return re * re + im * im
