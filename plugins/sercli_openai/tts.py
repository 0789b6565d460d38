"""The ``openai`` TTS engine: an instructable speech model told the tone of each emotion."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from sercli.api import RecordError, SercliError, TTSEngine
from sercli_openai.client import ClientOptions, Connection, Usage, public_url
from sercli_openai.prompts import canonical

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse")

# One tone instruction per emotion: what the voice does, not just the emotion's name.
TONES = {
    "angry": "Speak angrily: tense, forceful and clipped, with sharp emphasis on the key words, "
             "as if you are fed up and barely holding back.",
    "happy": "Speak happily: bright, warm and lively, smiling as you talk, with a lifted pitch.",
    "sad": "Speak sadly: slow, quiet and heavy, with a low falling pitch and small pauses, "
           "as if holding back tears.",
    "neutral": "Speak in a neutral, even, matter-of-fact tone, with no particular emotion.",
    "fear": "Speak fearfully: fast, breathy and shaky, with a raised pitch, as if something "
            "frightening is about to happen.",
    "disgust": "Speak with disgust: slow and low, drawing out words with a grimace in the voice, "
               "as if something is repulsive.",
    "surprise": "Speak with surprise: sudden, high and wide-ranging pitch, as if you just heard "
                "something you did not expect.",
    "calm": "Speak calmly: slow, soft and relaxed, steady and reassuring.",
    "boredom": "Speak with boredom: flat, slow and monotonous, low energy, as if uninterested.",
}


class OpenAITTS(TTSEngine):
    name = "openai"
    description = "OpenAI instructable speech (gpt-4o-mini-tts) with a tone instruction per emotion"
    max_concurrency = 4

    class Options(ClientOptions):
        model: str = Field("gpt-4o-mini-tts", description="speech model (one that follows instructions)")
        voices: str = Field("", description=f"comma-separated voice pool (default: {', '.join(VOICES)})")
        instructions: str = Field(
            "", description="tone instruction for every emotion, '{emotion}' is replaced "
            "(default: a built-in instruction per emotion)",
        )
        speed: float = Field(1.0, ge=0.25, le=4.0, description="speaking rate")
        response_format: Literal["wav", "pcm"] = Field("wav", description="audio format requested")
        pcm_sample_rate: int = Field(24000, ge=8000, description="sample rate of 'pcm' replies")

    def __init__(self, name=None, options=None):
        super().__init__(name, options)
        if self.options.model.startswith("tts-1"):
            raise SercliError(
                f"Model {self.options.model!r} ignores tone instructions, so the speech would not "
                "carry the emotion; use an instructable model such as gpt-4o-mini-tts"
            )
        self.max_concurrency = self.options.max_concurrency
        self.conn = Connection(self.options)
        self._usage = Usage("requests", "characters", "retries", "failures")
        pool = [v.strip() for v in self.options.voices.split(",") if v.strip()]
        self._voices = pool or list(VOICES)

    def provenance(self):
        out = super().provenance()
        out["options"]["base_url"] = public_url(self.options.base_url)
        return out

    def identity(self) -> dict:
        """What decides the audio besides text, emotion and voice (the key of cached audio, so a
        paid utterance is never requested twice): not the pool, the concurrency or the retries."""
        opts = self.options
        return {
            "plugin": self.name, "model": opts.model, "base_url": self.conn.base_url,
            "instructions": opts.instructions or zlib.crc32(repr(sorted(TONES.items())).encode()),
            "speed": opts.speed, "response_format": opts.response_format,
            "pcm_sample_rate": opts.pcm_sample_rate if opts.response_format == "pcm" else None,
        }

    def voices(self, emotion: str | None = None) -> list[str]:
        return list(self._voices)  # every voice takes every tone instruction

    def instruction(self, emotion: str) -> str:
        if self.options.instructions:
            return self.options.instructions.replace("{emotion}", emotion)
        return TONES.get(canonical(emotion), f"Speak in a clearly {emotion} tone of voice.")

    def estimate(self, text: str) -> dict[str, int]:
        return {"requests": 1, "characters": len(text)}

    def usage(self) -> dict[str, int]:
        return self._usage.totals()

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        from sercli.api import resample, write_wav

        opts = self.options
        client = self.conn.client()
        reply = self.conn.call(
            lambda: client.audio.speech.create(
                model=opts.model, voice=voice, input=text, instructions=self.instruction(emotion),
                response_format=opts.response_format, speed=opts.speed,
            ),
            self._usage, f"speech {voice}", bad_request_fatal=False,
        )
        self._usage.add(characters=len(text))
        wav, sr = self._decode(reply.content)
        if wav.size == 0:
            self._usage.add(failures=1)
            raise RecordError(f"speech {voice}: the server returned no audio")
        if sr != self.sample_rate:
            wav = resample(wav, sr, self.sample_rate)
        write_wav(path, wav, self.sample_rate)

    def _decode(self, data: bytes):
        """Reply bytes -> (mono float32 samples, sample rate)."""
        import numpy as np
        import soundfile as sf

        if self.options.response_format == "pcm":  # 16-bit little-endian mono
            pcm = np.frombuffer(data[: len(data) // 2 * 2], "<i2")
            return pcm.astype(np.float32) / 32768, self.options.pcm_sample_rate

        try:
            wav, sr = sf.read(io.BytesIO(_fix_streamed_wav(data)), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises its own error types for bad data
            self._usage.add(failures=1)
            raise RecordError(f"the server's WAV cannot be decoded: {exc}") from None
        return wav.mean(axis=1), sr


def _fix_streamed_wav(data: bytes) -> bytes:
    """A WAV written while streaming may declare a data chunk of 0 bytes; give it its real size."""
    at = data.find(b"data", 12)
    if at < 0 or len(data) < at + 8 or struct.unpack_from("<I", data, at + 4)[0] != 0:
        return data
    return data[: at + 4] + struct.pack("<I", len(data) - at - 8) + data[at + 8:]
