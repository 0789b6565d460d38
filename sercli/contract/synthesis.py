"""The TTS engine family (`sercli synthesize --engine NAME`, hook ``register_tts_engines``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from sercli.contract.common import Plugin


class TTSEngine(Plugin):
    """Speaks text in an emotion with one of several voices; writes 16 kHz mono WAV."""

    sample_rate: ClassVar[int] = 16000
    # calls of ``synthesize`` that may run at once, in threads (see the module docstring)
    max_concurrency: ClassVar[int] = 1
    # True when the engine can speak no voice but those ``voices()`` lists: sercli then refuses
    # an unknown ``--voices`` name before any audio is made. False (the default) for engines
    # whose voice names are open (espeak-ng's ``voice+variant``, a cloud service's new voices).
    closed_voices: ClassVar[bool] = False

    def voices(self, emotion: str | None = None) -> list[str]:
        """The voices that can speak ``emotion`` (every voice when None)."""
        raise NotImplementedError

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        """Write ``text`` spoken in ``emotion`` by ``voice`` to ``path`` as a mono WAV at
        ``sample_rate`` (use ``sercli.api.write_wav``: whole file or none). RecordError for
        this one utterance (text refused, empty audio), SercliError to end the run."""
        raise NotImplementedError

    def estimate(self, text: str) -> dict[str, int]:
        """Requests and characters synthesising ``text`` would cost (for --dry-run)."""
        return {"requests": 1, "characters": len(text)}

    def usage(self) -> dict[str, int]:
        """Totals spent so far, for the end-of-run summary (thread-safe: see above)."""
        return {}
