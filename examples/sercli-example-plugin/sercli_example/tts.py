"""TTS engine `example`: a pure-numpy vowel synthesiser (a glottal pulse train through formants).

Not speech, but audio with a pitch contour and loudness that follow the emotion, written as
16 kHz mono WAV through sercli's public ``write_wav``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sercli.api import Options, TTSEngine

VOICES = {"low": 110.0, "mid": 160.0, "high": 220.0}  # base pitch in Hz
EMOTION = {  # pitch factor, pitch range, loudness, seconds per character
    "angry": (1.2, 0.30, 0.9, 0.055),
    "happy": (1.3, 0.40, 0.7, 0.050),
    "neutral": (1.0, 0.05, 0.5, 0.060),
    "sad": (0.85, 0.05, 0.3, 0.080),
}
FORMANTS = ((700.0, 90.0), (1200.0, 110.0), (2600.0, 160.0))  # an /a/


class Vowels(TTSEngine):
    name = "example"
    description = "Pure-numpy vowel synthesiser whose pitch follows the emotion (example plugin)."
    max_concurrency = 2
    closed_voices = True  # only the voices below: sercli refuses others before any audio is made

    class Options(Options):
        max_seconds: float = Field(3.0, gt=0, le=30, description="Longest utterance in seconds.")

    def voices(self, emotion: str | None = None) -> list[str]:
        return list(VOICES)

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        import numpy as np

        from sercli.api import SercliError, write_wav

        if voice not in VOICES:
            raise SercliError(f"example TTS: unknown voice {voice!r} (voices: {', '.join(VOICES)})")
        factor, spread, loud, per_char = EMOTION.get(emotion, EMOTION["neutral"])
        sr = self.sample_rate
        n = int(sr * min(self.options.max_seconds, max(0.3, per_char * len(text))))
        t = np.arange(n) / sr
        f0 = VOICES[voice] * factor * (1 + spread * np.sin(2 * np.pi * 1.5 * t))
        phase = np.cumsum(f0) / sr
        source = (phase % 1.0 < 0.1).astype(np.float64)  # a pulse each pitch period
        wav = np.zeros(n)
        for freq, bw in FORMANTS:  # two-pole resonators, one per formant
            r = np.exp(-np.pi * bw / sr)
            a1, a2 = 2 * r * np.cos(2 * np.pi * freq / sr), -r * r
            y1 = y2 = 0.0
            out = np.empty(n)
            for i, x in enumerate(source):
                y = x + a1 * y1 + a2 * y2
                out[i], y2, y1 = y, y1, y
            wav += out
        wav *= np.hanning(n) ** 0.25  # soft onset and offset
        wav = loud * wav / (np.abs(wav).max() or 1.0)
        write_wav(path, wav.astype(np.float32), sr)

    def estimate(self, text: str) -> dict[str, int]:
        return {"requests": 0, "characters": len(text)}

    def identity(self) -> dict:
        return {**self.provenance(), "version": 1}
