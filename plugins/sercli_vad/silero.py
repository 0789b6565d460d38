"""The ``silero`` detector: Silero VAD (the ``silero-vad`` package's own ONNX sequence model,
run through onnxruntime on the CPU), streaming.

The model scores 32 ms frames (512 samples at 16 kHz, each with the 64 samples before it as
context) and carries an LSTM state from frame to frame; here the state and the last context
go from block to block, so the frame probabilities are those the package computes over the
whole file at once (``SileroVADSequence.audio_forward``), while memory holds one block.
The package itself is not imported (importing it sets torch's thread count for the whole
process); only its model file is read.

The model's probability decays for a quarter of a second after speech ends (its hangover);
``trim_db`` ends a segment on its last frame above the noise floor instead (and begins it on
its first), which puts the boundaries where the speech is.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import Field

from sercli.api import VAD, Options, SercliError

FRAME, CONTEXT = 512, 64  # samples at 16 kHz
MAX_FRAMES = 512  # frames per model call (16 s)
MODEL = "silero_vad_16k_sequence.onnx"
INSTALL = "pip install 'sercli[silero]' (silero-vad and onnxruntime)"


def model_path() -> Path | None:
    spec = importlib.util.find_spec("silero_vad")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / MODEL
        if path.is_file():
            return path
    return None


class SileroVAD(VAD):
    name = "silero"
    description = "Silero VAD, the neural detector the silero-vad package ships (ONNX, CPU); the default when installed."
    rank = 10
    sample_rate = 16000

    class Options(Options):
        threshold: float = Field(0.5, gt=0, lt=1, description="speech starts at this frame probability")
        neg_threshold: float = Field(0.35, gt=0, lt=1, description="speech goes on down to this probability "
                                                                   "(at most threshold)")
        min_speech_ms: float = Field(250.0, ge=0, description="shorter bursts are dropped (ms)")
        min_silence_ms: float = Field(300.0, gt=0, description="shorter pauses do not end a segment (ms)")
        pad_ms: float = Field(30.0, ge=0, description="each segment is widened by this much each side (ms)")
        trim_db: float = Field(6.0, ge=0, description="a segment begins and ends on frames this far above the noise "
                                                      "floor (dB; trims the model's hangover after speech; 0: off)")
        window_s: float = Field(30.0, gt=0, description="the noise floor: the quietest 10% of the frames of the "
                                                       "last window_s seconds")

    @classmethod
    def usable(cls) -> str | None:
        if model_path() is None:
            return f"silero-vad is not installed: {INSTALL}"
        if importlib.util.find_spec("onnxruntime") is None:
            return f"onnxruntime is not installed: {INSTALL}"
        return None

    def load(self) -> None:
        if self.options.neg_threshold > self.options.threshold:
            raise SercliError(f"vad silero: neg_threshold {self.options.neg_threshold} is above threshold "
                              f"{self.options.threshold}")
        why = self.usable()
        if why:
            raise SercliError(f"vad silero: {why}")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"])

    def probabilities(self, blocks: Iterable) -> Iterator:
        """The speech probability of each 32 ms frame (one array per model call), the last
        frame zero-padded."""
        for probs, _ in self._scored(blocks):
            yield probs

    def _scored(self, blocks: Iterable) -> Iterator:
        """(speech probabilities, the frames they score) per model call."""
        import numpy as np

        h = np.zeros((1, 1, 128), np.float32)
        c = np.zeros((1, 1, 128), np.float32)
        before = np.zeros(CONTEXT, np.float32)
        carry = np.zeros(0, np.float32)
        for block in itertools.chain(blocks, [None]):  # None: the end, where a partial frame is padded
            x = np.concatenate([carry, block]) if block is not None else carry
            if block is None and len(x):
                x = np.concatenate([x, np.zeros(FRAME - len(x), np.float32)])
            k = len(x) // FRAME
            carry = x[k * FRAME:]
            if not k:
                continue
            for first in range(0, k, MAX_FRAMES):  # the sequence model's calls, as the package makes them
                frames = x[first * FRAME : min(k, first + MAX_FRAMES) * FRAME].reshape(-1, FRAME).astype(np.float32)
                contexts = np.empty((len(frames), CONTEXT), np.float32)
                contexts[0] = before
                contexts[1:] = frames[:-1, -CONTEXT:]
                before = frames[-1, -CONTEXT:].copy()
                probs, h, c = self.session.run(["speech_probs", "hn", "cn"],
                                               {"input": np.concatenate([contexts, frames], axis=1), "h": h, "c": c})
                yield np.asarray(probs).reshape(-1), frames

    def speech(self, blocks: Iterable) -> Iterator[tuple[int, int]]:
        from sercli_vad.spans import Hysteresis, NoiseFloor, frame_db

        o = self.options
        per_ms = self.sample_rate / 1000 / FRAME
        machine = Hysteresis(round(o.min_speech_ms * per_ms), round(o.min_silence_ms * per_ms), round(o.pad_ms * per_ms))
        total = [0]

        def counted():
            for block in blocks:
                total[0] += len(block)
                yield block

        floor = NoiseFloor(round(o.window_s * 1000 * per_ms))
        for probs, frames in self._scored(counted()):
            db = frame_db(frames)
            loud = db >= floor.push(db) + o.trim_db if o.trim_db else None
            for a, b in machine.push(probs, o.threshold, o.neg_threshold, loud):
                yield a * FRAME, min(b * FRAME, total[0])
        for a, b in machine.finish():
            yield a * FRAME, min(b * FRAME, total[0])
