"""The `onnx` run exporter: a run's features and head as two ONNX models.

    DIR/encoder.onnx   waveform (1, samples) float32 -> features (layers, frames, dim) float32
    DIR/head.onnx      features (1, layers, frames, dim), mean (layers, dim), std (layers, dim)
                       -> probabilities (1, classes)
    DIR/manifest.json  labels, sample rate, normalisation, the longest clip, versions (sercli)

Both are traced by ``torch.onnx.export`` (the dynamo exporter, with the number of samples, and
for frame-level features the number of frames, dynamic). The encoder is the backbone with the
run's layers, pooling and feature precision; the head standardises the features with the mean
and std it is given (the speaker's own statistics for a speaker-normalised run, zeros and ones
otherwise), then averages the probabilities of the run's jobs. Needs `pip install 'sercli[onnx]'`
(onnx, onnxscript, onnxruntime) to export; only onnxruntime to run.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
import warnings
from typing import Any, Literal

from pydantic import Field

from sercli.api import Options, RecordError, RunExporter, SercliError

ENCODER, HEAD = "encoder.onnx", "head.onnx"
LARGE = 1 << 30  # weights above this go to a .data file beside the model (protobuf's 2 GB limit)


class OnnxExporter(RunExporter):
    name = "onnx"
    description = "ONNX models of a run's encoder (features) and head, for onnxruntime on any CPU."
    format_version = 2  # 2: speaker normalisation zeroes dimensions constant within a speaker

    class Options(Options):
        opset: int = Field(18, ge=18, le=23, description="ONNX opset to write (the dynamo exporter needs 18+).")
        exporter: Literal["dynamo", "torchscript"] = Field(
            "dynamo", description="torch.onnx's exporter: dynamo (torch.export, the supported one) or torchscript "
            "(the deprecated tracer: about 5x faster to export, the same numbers here; models under 2 GB).")

    def export(self, run, folder: Path) -> dict[str, Any]:
        import torch

        _needs("onnx", "onnxscript", "onnxruntime")
        samples = torch.export.Dim("samples", min=max(run.min_samples, 2),
                                   max=int((run.max_seconds or 3600.0) * run.sample_rate))
        wav = torch.from_numpy(run.examples[0])[None]
        files = {"encoder": ENCODER, "head": HEAD}
        files.update(self._write(run.features, (wav,), ({1: samples},), ["waveform"], ["features"],
                                 folder / ENCODER, "encoder"))
        with torch.inference_mode():
            feats = run.features(wav)[None]
        zeros, ones = torch.zeros(run.layers, run.dim), torch.ones(run.layers, run.dim)
        frames = ({2: torch.export.Dim("frames", min=1, max=1 << 24)} if run.frames_dynamic else None, None, None)
        files.update(self._write(run.head, (feats, zeros, ones), frames, ["features", "mean", "std"],
                                 ["probabilities"], folder / HEAD, "head"))
        import onnxruntime

        return {"files": files, "opset": self.options.opset, "exporter": self.options.exporter,
                "onnxruntime": onnxruntime.__version__,
                "inputs": {"encoder": ["waveform"], "head": ["features", "mean", "std"]},
                "outputs": {"encoder": ["features"], "head": ["probabilities"]}}

    def _write(self, module, args, dynamic, inputs, outputs, path: Path, what: str) -> dict[str, str]:
        import torch

        large = sum(p.numel() * p.element_size() for p in module.parameters()) > LARGE
        buffer = io.StringIO()
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        if self.options.exporter == "torchscript":  # the tracer takes axis names, not torch.export dims
            how = {"dynamo": False, "dynamic_axes": {name: {axis: dim.__name__ for axis, dim in spec.items()}
                                                     for name, spec in zip(inputs, dynamic) if spec}}
        else:
            how = {"dynamo": True, "dynamic_shapes": dynamic, "external_data": large}
        try:  # the exporter talks on stdout and stderr: kept, and shown only in the error
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                                  opset_version=self.options.opset, **how)
        except Exception as exc:  # noqa: BLE001 - any tracer failure: this run cannot be exported
            while exc.__cause__ is not None:  # torch.onnx wraps the tracer's own error: say that one
                exc = exc.__cause__
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise SercliError(f"the {what} cannot be traced to ONNX ({type(exc).__name__}: {first[:300]})") from None
        data = path.with_name(path.name + ".data")
        return {f"{what} weights": data.name} if data.exists() else {}

    def load(self, folder: Path, manifest: dict[str, Any]):
        return OnnxModel(folder, manifest)


class OnnxModel:
    """An exported folder on onnxruntime's CPU provider."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        _needs("onnxruntime")
        import onnxruntime as ort

        files = manifest["files"]
        try:
            self.encoder = ort.InferenceSession(str(folder / files["encoder"]), providers=["CPUExecutionProvider"])
            self.head = ort.InferenceSession(str(folder / files["head"]), providers=["CPUExecutionProvider"])
        except KeyError as exc:
            raise SercliError(f"{folder}: its manifest names no {exc.args[0]} file; export the run again") from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types for a torn or foreign file
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise SercliError(f"{folder}: onnxruntime cannot load it ({first[:200]}); export the run again") from None

    def features(self, wav):
        try:
            return self.encoder.run(None, {"waveform": wav[None]})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's error for this input (too short...)
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise RecordError(f"the exported encoder fails on this audio ({first[:200]})") from None

    def probabilities(self, features, mean, std):
        return self.head.run(None, {"features": features[None], "mean": mean, "std": std})[0][0]


def _needs(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SercliError(f"the onnx exporter needs {', '.join(missing)}: pip install 'sercli[onnx]'")
