"""The experiment tracker family (`sercli train --tracker NAME`, `sercli track`, hook
``register_trackers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.contract.common import Plugin


class Tracker(Plugin):
    """Sends a finished training run to an experiment tracker (TensorBoard event files, an
    MLflow store...): `sercli train --tracker NAME` (options ``-O tracker.KEY=VALUE``), or
    `sercli track RUN --tracker NAME` for a run trained before.

    sercli reads the run folder and calls ``start`` once, then ``scalar``, ``text`` and
    ``figure`` any number of times (per-epoch curves with the epoch as ``step``; fold
    metrics with the job's index), then ``finish`` (also after a failure). Tags are
    ``/``-separated paths such as ``fold-00-seed-0/val_UA`` or ``test/UA``.

    With `train --tracker` this happens once the run folder is final (renamed into place):
    ``where`` and every ``png`` path are paths of the final folder, which stay valid. Any error
    a tracker raises (a ``SercliError`` or another) costs a warning naming it, never the run:
    the run folder stays complete, `train` exits with status 1 saying how to send it again
    (`sercli track RUN --tracker NAME`), and `sercli track` itself exits 1 with that line.
    Before any training, ``where`` and every option of type ``Path`` (such as a ``logdir``)
    are refused when they lie inside an existing run other than the one being written.
    """

    def start(self, where: Path, name: str, params: dict[str, Any]) -> None:
        """Begin a run called ``name`` with its configuration ``params`` (a JSON-able dict);
        ``where`` is a folder sercli chose for local files, not yet created (`train`:
        RUN/NAME; `track`: --out/RUN_NAME); trackers with a store of their own may use an
        option instead (declare a path as ``pathlib.Path`` so that sercli checks it).
        SercliError when the tracker cannot work (a missing library: say how to install it)."""
        raise NotImplementedError

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        """A number under ``tag`` at ``step`` (the epoch, or the job's index)."""
        raise NotImplementedError

    def text(self, tag: str, text: str) -> None:
        """Markdown text (the parameters, a table of results)."""

    def figure(self, tag: str, png: Path) -> None:
        """A PNG figure the run holds (confusion matrix, training curves)."""

    def finish(self) -> None:
        """Write everything out and close."""
