"""The run exporter family (`sercli export NAME RUN -o DIR`, hook ``register_run_exporters``):
a trained run written as a folder that runs without sercli's training stack, and read back by
`sercli predict DIR`.

sercli hands the exporter the run as two torch modules (``DeployableRun``): the features,
exactly as training read them, and the head, with the normalisation between them left to the
caller. The folder it writes holds its own files plus ``manifest.json``, which sercli writes
(the exporter adds its entries to it). sercli builds the folder in a temporary sibling, loads
it back through ``load``, checks its probabilities against the run's own on test clips, and
only then renames it into place: a failed export leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from sercli.contract.common import Plugin

MANIFEST = "manifest.json"  # in every exported folder: written by sercli, read before ``load``


@dataclass
class DeployableRun:
    """A trained run as torch modules (what sercli's own ``predict RUN`` computes, split in two).

    ``features``: ``(1, samples)`` float32 waveform at ``sample_rate`` -> ``(layers, frames,
    dim)`` float32: the backbone, the run's layer selection, pooling (frames == 1 when pooled)
    and the feature store's precision (float16 features are rounded to it), for one clip of at
    most ``max_seconds`` (None: any length). Traceable by ``torch.export`` with a dynamic
    number of samples (``min_samples`` up to ``max_seconds``).

    ``head``: ``(features (1, layers, frames, dim), mean (layers, dim), std (layers, dim))`` ->
    ``(1, classes)`` probabilities: the features standardised as ``(x - mean) / std`` (the
    speaker's statistics for a speaker-normalised run; zeros and ones for ``norm == "none"``),
    then the head, or the mean of several heads' probabilities (the jobs of a cross-validated
    run). ``frames_dynamic``: whether frames vary (features kept frame by frame).

    ``examples``: waveforms to trace with (1-D float32 numpy arrays).
    """

    labels: list[str]
    sample_rate: int
    features: Any  # torch.nn.Module
    head: Any  # torch.nn.Module
    layers: int
    dim: int
    frames_dynamic: bool
    norm: str  # "speaker" or "none"
    min_samples: int
    max_seconds: float | None
    examples: list[Any] = field(default_factory=list)


class Deployed(Protocol):
    """An exported folder, loaded (what ``RunExporter.load`` returns)."""

    def features(self, wav: Any) -> Any:
        """A 1-D float32 waveform at the manifest's sample rate -> (layers, frames, dim) float32."""

    def probabilities(self, features: Any, mean: Any, std: Any) -> Any:
        """(layers, frames, dim) features, (layers, dim) mean and std -> (classes,) probabilities."""


class RunExporter(Plugin):
    """Writes a run in a deployment format, and loads what it wrote.

    ``format_version`` is written into the manifest; sercli refuses (one line) a folder whose
    version differs from the installed exporter's, or that lacks a file the manifest names, before
    ``load`` is called. Errors: ``SercliError`` when the run cannot be written in this format
    (a module the format's tracer cannot follow, a library that is not installed: say how to
    install it); the export then leaves nothing behind.
    """

    format_version: ClassVar[int] = 1

    def export(self, run: DeployableRun, folder: Path) -> dict[str, Any]:
        """Write ``run`` into ``folder`` (empty, temporary) and return the manifest entries to
        add: at least ``files``, ``{role: file name inside folder}``, and anything else a
        reader needs (input and output names, opset)."""
        raise NotImplementedError

    def load(self, folder: Path, manifest: dict[str, Any]) -> Deployed:
        """The folder ``export`` wrote (its manifest already checked), ready to predict."""
        raise NotImplementedError
