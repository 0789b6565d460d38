"""The voice-activity detector family (`sercli predict RUN LONG.wav --segments --vad NAME`,
hook ``register_vads``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterable, Iterator

from sercli.contract.common import Plugin

if TYPE_CHECKING:
    import numpy as np


class VAD(Plugin):
    """Finds the speech in a long recording, streaming: `predict --segments` then scores each
    speech segment on its own.

    sercli calls ``usable`` (is its library installed?), then ``load`` once, then ``speech``
    once per recording with the recording's samples in consecutive blocks. Memory must stay
    flat in the recording's length: keep only a bounded state between blocks (a model's
    hidden state, the last frames of a block), never the blocks themselves.

    Without ``--vad``, sercli takes the usable detector with the highest ``rank`` and says
    which on stderr.
    """

    # the rate of the samples ``speech`` receives (sercli resamples the recording to it)
    sample_rate: ClassVar[int] = 16000
    # the default is the usable detector with the highest rank (a model over a rule of thumb)
    rank: ClassVar[int] = 0

    @classmethod
    def usable(cls) -> str | None:
        """None when this detector can run here; else why not, with the fix (``silero-vad is
        not installed: pip install 'sercli[silero]'``). Cheap: no model is loaded."""
        return None

    def load(self) -> None:
        """Load models; called once before the first ``speech``. SercliError (one line, with
        the fix) when the detector cannot work."""

    def speech(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[int, int]]:
        """The speech of one recording: ``blocks`` are its consecutive mono float32 samples at
        ``sample_rate`` (a few seconds each, the last one shorter); yield ``(start, stop)``
        sample indices from the start of the recording, in order, not overlapping, each as
        soon as it is sure (``stop`` exclusive, at most the recording's length). sercli
        checks them: a span out of order, empty or past the end ends the command with one
        line naming the plugin."""
        raise NotImplementedError
