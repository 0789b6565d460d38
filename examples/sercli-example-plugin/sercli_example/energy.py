from __future__ import annotations

from pydantic import Field

from sercli.base import Backbone, Options


class Energy(Backbone):
    name = "energy"
    description = "Frame log-energy and zero-crossing rate (example plugin)."
    level = "frame"

    class Options(Options):
        frame_ms: float = Field(25.0, gt=0, description="Frame length in milliseconds.")
        hop_ms: float = Field(10.0, gt=0, description="Hop in milliseconds.")

    def forward(self, wavs, device: str = "cpu"):
        import torch

        win = int(self.sample_rate * self.options.frame_ms / 1000)
        hop = int(self.sample_rate * self.options.hop_ms / 1000)
        outs = []
        for wav in wavs:
            x = torch.from_numpy(wav)
            if len(x) < win:
                x = torch.nn.functional.pad(x, (0, win - len(x)))
            frames = x.unfold(0, win, hop)  # (T, win)
            energy = torch.log(frames.pow(2).mean(1) + 1e-8)
            zcr = (frames[:, 1:].sign() != frames[:, :-1].sign()).float().mean(1)
            outs.append(torch.stack([energy, zcr], dim=-1).unsqueeze(0))  # (1, T, 2)
        return outs

    def export_module(self):
        """``forward`` for one (1, samples) tensor of at least one frame, in torch operations
        only (`sercli export`; shorter clips, which ``forward`` pads, are not exported)."""
        import torch

        win = int(self.sample_rate * self.options.frame_ms / 1000)
        hop = int(self.sample_rate * self.options.hop_ms / 1000)

        class EnergyModule(torch.nn.Module):
            def forward(self, wav):
                frames = wav[0].unfold(0, win, hop)
                energy = torch.log(frames.pow(2).mean(1) + 1e-8)
                zcr = (frames[:, 1:].sign() != frames[:, :-1].sign()).float().mean(1)
                return torch.stack([energy, zcr], dim=-1).unsqueeze(0)

        return EnergyModule().eval()
