"""The ``tensorboard`` tracker: TensorBoard event files, written offline by torch's SummaryWriter.

`sercli train --tracker tensorboard` writes them into the run folder (``RUN/tensorboard/``);
`tensorboard --logdir RUN/tensorboard` (or a folder of runs) shows the parameters (Text),
every job's per-epoch curves and the test metrics (Scalars), and the figures (Images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from sercli.api import Options, SercliError, Tracker


class TensorBoard(Tracker):
    name = "tensorboard"
    description = "TensorBoard event files (offline): parameters, per-epoch curves, fold metrics, figures"

    class Options(Options):
        logdir: Optional[Path] = Field(None, description="Folder for the event files (default: the folder sercli gives, RUN/tensorboard).")
        flush_secs: int = Field(30, ge=1, description="Seconds between flushes of the event file.")

    def start(self, where: Path, name: str, params: dict[str, Any]) -> None:
        try:
            import tensorboard  # noqa: F401  (SummaryWriter needs it, and says so less clearly)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SercliError("the tensorboard tracker needs the tensorboard package: "
                              "python3 -m pip install tensorboard") from None
        import json

        self.logdir = Path(self.options.logdir or where)
        self.writer = SummaryWriter(log_dir=str(self.logdir), flush_secs=self.options.flush_secs)
        self.writer.add_text("params", f"**{name}**\n\n```json\n{json.dumps(params, indent=2, default=str)}\n```")

    def scalar(self, tag: str, value: float, step: int = 0) -> None:
        self.writer.add_scalar(tag, float(value), global_step=step)

    def text(self, tag: str, text: str) -> None:
        self.writer.add_text(tag, text)

    def figure(self, tag: str, png: Path) -> None:
        import matplotlib.image

        image = matplotlib.image.imread(str(png))  # (H, W, 3 or 4) floats in [0, 1]
        self.writer.add_image(tag, image[..., :3], dataformats="HWC")

    def finish(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.flush()
            writer.close()
