"""ctypes binding to libespeak-ng, the subset needed to render text into samples.

espeak-ng keeps all its state in globals and is not thread-safe, so every call goes through
``LOCK`` and the library is initialised once per process, in synchronous mode: ``espeak_Synth``
returns only when the whole text has been rendered, handing samples to ``_on_samples`` meanwhile.
"""

from __future__ import annotations

import ctypes
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sercli.errors import RecordError, SercliError

LOCK = threading.Lock()

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # no espeakSSML / espeakPHONEMES flag: markup and [[...]] are read as plain text
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_EE_NOT_FOUND = 2

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class Prosody:
    """espeak-ng parameters: rate in words/minute (80-450, default 175), volume 0-200
    (default 100), pitch and range 0-100 within the voice's own range (default 50),
    wordgap in units of 10 ms."""

    rate: int = 175
    pitch: int = 50
    range: int = 50
    volume: int = 100
    wordgap: int = 0


class _Espeak:
    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # espeak-ng >= 1.52
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        data = Path(espeakng_loader.get_data_path())
        # espeak_Initialize wants the folder that *contains* espeak-ng-data.
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data.parent).encode(), 0)
        if self.sample_rate <= 0:
            raise SercliError(f"espeak-ng failed to initialise with data in {data}")
        self._variants = data / "voices" / "!v"
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._on_samples)  # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _on_samples(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = carry on synthesising

    def set_voice(self, voice: str) -> None:
        _, plus, variant = voice.partition("+")
        err = self._lib.espeak_SetVoiceByName(voice.encode())
        # espeak-ng silently ignores an unknown "+variant"; a pool must not hold look-alikes.
        if err == _EE_NOT_FOUND or (plus and not (self._variants / variant).is_file()):
            raise SercliError(
                f"espeak-ng has no voice {voice!r} (use a language such as en-us or en-gb-x-rp, "
                "optionally with a +variant such as en-us+f3)"
            )
        if err:
            raise SercliError(f"espeak-ng could not select voice {voice!r} (error {err})")

    def synth(self, text: str, voice: str, prosody: Prosody) -> np.ndarray:
        """Render ``text`` -> int16 samples at ``self.sample_rate``. Call with LOCK held."""
        self.set_voice(voice)
        # Parameters persist in the library between calls, so every call sets all of them.
        for key, code in _PARAM.items():
            self._lib.espeak_SetParameter(code, int(getattr(prosody, key)), 0)
        data = text.encode("utf-8") + b"\0"
        if hasattr(self._lib, "espeak_ng_SetRandSeed"):
            # The breathy variants (+f1 ... +f5) mix in noise from espeak-ng's own generator,
            # whose state otherwise differs from run to run (in a process that has loaded
            # torch, for one). Seeded from what is said, a clean run renders the same samples.
            self._lib.espeak_ng_SetRandSeed(zlib.crc32(repr((text, voice, prosody)).encode()))
        self._chunks = []
        err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        chunks, self._chunks = self._chunks, []
        if err:
            raise RecordError(f"espeak-ng failed on {text[:40]!r} (error {err})")
        if not chunks:
            raise RecordError(f"espeak-ng produced no audio for {text[:40]!r}")
        return np.concatenate(chunks)


_instance: _Espeak | None = None


def espeak() -> _Espeak:
    """The process-wide library handle. Call with LOCK held."""
    global _instance
    if _instance is None:
        _instance = _Espeak()
    return _instance
