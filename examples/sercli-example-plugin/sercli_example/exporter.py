"""Run exporter `pt2`: a run's features and head as torch.export programs (`.pt2` files), run
with torch alone (`sercli export pt2 RUN -o DIR`, then `sercli predict DIR AUDIO...`)."""

from __future__ import annotations

from pathlib import Path

from sercli.api import RunExporter


class Pt2(RunExporter):
    name = "pt2"
    description = "torch.export programs of a run's encoder and head (example plugin)."
    format_version = 1

    def export(self, run, folder: Path) -> dict:
        import torch

        wav = torch.from_numpy(run.examples[0])[None]
        # clips of at least 0.1 s: shorter ones, which backbones pad, need not trace
        shortest = max(run.min_samples, run.sample_rate // 10)
        samples = torch.export.Dim("samples", min=shortest, max=int((run.max_seconds or 3600) * run.sample_rate))
        torch.export.save(torch.export.export(run.features, (wav,), dynamic_shapes=({1: samples},)), folder / "encoder.pt2")
        with torch.inference_mode():
            feats = run.features(wav)[None]
        frames = {2: torch.export.Dim("frames", min=1, max=1 << 20)} if run.frames_dynamic else None
        head = torch.export.export(run.head, (feats, torch.zeros(run.layers, run.dim), torch.ones(run.layers, run.dim)),
                                   dynamic_shapes=(frames, None, None))
        torch.export.save(head, folder / "head.pt2")
        return {"files": {"encoder": "encoder.pt2", "head": "head.pt2"}}

    def load(self, folder: Path, manifest: dict):
        return Programs(folder, manifest["files"])


class Programs:
    def __init__(self, folder: Path, files: dict):
        import torch

        self.encoder = torch.export.load(folder / files["encoder"]).module()
        self.head = torch.export.load(folder / files["head"]).module()

    def features(self, wav):
        import torch

        with torch.inference_mode():
            return self.encoder(torch.from_numpy(wav)[None]).numpy()

    def probabilities(self, features, mean, std):
        import torch

        with torch.inference_mode():
            return self.head(torch.from_numpy(features)[None], torch.from_numpy(mean), torch.from_numpy(std))[0].numpy()
