from __future__ import annotations

from pydantic import Field

from sercli.base import Backbone, Options
from sercli.core.errors import RecordError

N_FFT = 400  # 25 ms at 16 kHz


class Fbank(Backbone):
    name = "fbank"
    description = "Log-mel filterbank frames (torchaudio), 25 ms window, 10 ms hop."
    level = "frame"

    class Options(Options):
        n_mels: int = Field(80, ge=8, le=256, description="Mel bands.")
        deltas: bool = Field(False, description="Append first and second derivatives.")

    def load(self, device: str = "cpu") -> None:
        import torchaudio

        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=N_FFT, win_length=N_FFT, hop_length=160,
            n_mels=self.options.n_mels,
        ).to(device)

    def forward(self, wavs, device: str = "cpu"):
        import torch
        import torchaudio.functional as AF

        outs = []
        for wav in wavs:  # cheap per item; batching buys nothing for an FFT front end
            if len(wav) <= N_FFT // 2:  # the centred first window reflects half a window
                ms = 1000 / self.sample_rate
                raise RecordError(f"audio is too short for fbank ({len(wav) * ms:.1f} ms; it needs more than "
                                  f"{N_FFT // 2 * ms:.1f} ms)")
            x = torch.from_numpy(wav).to(device)
            feats = torch.log(self._mel(x) + 1e-6).T  # (frames, n_mels)
            if self.options.deltas:
                d1 = AF.compute_deltas(feats.T).T
                d2 = AF.compute_deltas(d1.T).T
                feats = torch.cat([feats, d1, d2], dim=-1)
            outs.append(feats.unsqueeze(0))  # (1 layer, frames, dim)
        return outs

    def export_module(self):
        """The same filterbank as a torch module on a (1, samples) tensor (`sercli export`):
        torchaudio's MelSpectrogram with its STFT as sercli.api.PowerSpectrum."""
        import torch
        import torchaudio.functional as AF

        from sercli.api import PowerSpectrum

        self.load("cpu")
        spec = self._mel.spectrogram
        power = PowerSpectrum(spec.n_fft, spec.hop_length, spec.window)
        fb, deltas = self._mel.mel_scale.fb, self.options.deltas

        class FbankModule(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.power = power
                self.register_buffer("fb", fb)

            def forward(self, wav):
                feats = torch.log(self.fb.T @ self.power(wav) + 1e-6).T
                if deltas:
                    d1 = AF.compute_deltas(feats.T).T
                    feats = torch.cat([feats, d1, AF.compute_deltas(d1.T).T], dim=-1)
                return feats.unsqueeze(0)

        return FbankModule().eval()
