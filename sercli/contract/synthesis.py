"""The TTS engine family (`sercli synthesize --engine NAME`, hook ``register_tts_engines``).

An engine reads one of two kinds of input records, and says which with ``reads``:

* ``reads = "text"`` (every engine unless it says otherwise): records ``id, emotion, text``
  (``gen-text`` writes them); sercli calls ``synthesize(text, emotion, voice, path)``.
* ``reads = "audio"``: recorded speech, records ``id, audio, emotion, speaker`` (a manifest of
  `sercli prepare`); sercli calls ``resynthesize(source, voice, path)`` with the whole source
  record (its ``audio`` an absolute path), and the record it writes is the source's, with the
  new audio, ``source: synthetic``, ``derived_from: {"id": SOURCE_ID, "speaker":
  SOURCE_SPEAKER}`` and ``speaker: ENGINE:VOICE@SOURCE_SPEAKER`` (a voice applied to another
  recorded speaker is another new speaker). Its features, gender, session and split are
  left out: they were the source's, not the new speech's. Audio is cached by the engine's
  identity, the source audio's content (a hash of its bytes), the emotion and the voice. Each
  source speaker is given the same ``--voices-per-text`` voices for all of its utterances,
  drawn from ``--seed`` and the speaker's name (not from the order of the records), so a
  voice turns one recorded speaker into one new speaker with all of that speaker's
  utterances, and a filtered manifest makes the same audio for the records it keeps.

  An audio engine reads the audio of the records it is given and no other: give it the
  training part only when a model will be tested on some speakers. (`sercli train` also
  drops, per job, every derived record whose source is not in that job's training part.)

Records of the other kind are refused in one line before any audio is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from sercli.contract.common import Plugin

# what each kind of engine reads: the fields its input records must have
READS = {"text": ("text", "emotion"), "audio": ("audio", "emotion", "speaker")}


class TTSEngine(Plugin):
    """Speaks text in an emotion with one of several voices (or, with ``reads = "audio"``,
    remakes recorded speech in new voices); writes 16 kHz mono WAV."""

    sample_rate: ClassVar[int] = 16000
    # what the engine reads: "text" (synthesize) or "audio" (resynthesize); see the module docstring
    reads: ClassVar[str] = "text"
    # calls of ``synthesize`` that may run at once, in threads (see the module docstring)
    max_concurrency: ClassVar[int] = 1
    # True when the engine can speak no voice but those ``voices()`` lists: sercli then refuses
    # an unknown ``--voices`` name before any audio is made. False (the default) for engines
    # whose voice names are open (espeak-ng's ``voice+variant``, a cloud service's new voices).
    closed_voices: ClassVar[bool] = False

    def voices(self, emotion: str | None = None) -> list[str]:
        """The voices that can speak ``emotion`` (every voice when None)."""
        raise NotImplementedError

    def more_voices(self) -> str:
        """How to get voices beyond those ``voices()`` lists (a download, an option), said after
        the list when ``--voices`` names one it lacks; "" when there is no other way."""
        return ""

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        """Write ``text`` spoken in ``emotion`` by ``voice`` to ``path`` as a mono WAV at
        ``sample_rate`` (use ``sercli.api.write_wav``: whole file or none). RecordError for
        this one utterance (text refused, empty audio), SercliError to end the run."""
        raise NotImplementedError

    def resynthesize(self, source: dict[str, Any], voice: str, path: Path) -> None:
        """For ``reads = "audio"``: write the recorded utterance ``source`` (a record with
        ``audio``, ``emotion``, ``speaker``) remade by ``voice`` to ``path``, as ``synthesize``
        writes (whole file or none, the same error and threading contract). Read no audio but
        ``source["audio"]``."""
        raise NotImplementedError

    def estimate(self, text: str | dict[str, Any]) -> dict[str, int]:
        """Requests and characters synthesising ``text`` would cost (for --dry-run); an audio
        engine is given the source record instead."""
        if isinstance(text, dict):
            return {"requests": 1}
        return {"requests": 1, "characters": len(text)}

    def usage(self) -> dict[str, int]:
        """Totals spent so far, for the end-of-run summary (thread-safe: see above)."""
        return {}
