"""ctypes binding to libespeak-ng, the subset needed to render text into samples.

espeak-ng keeps its state in globals and is not thread-safe, so every call goes through
``LOCK``, in synchronous mode: ``espeak_Synth`` returns only when the whole text has been
rendered, handing samples to ``_on_samples`` meanwhile.

Some of that state carries over from one utterance to the next and changes the samples: the
pitch flutter's phase (a function-level ``static`` in wavegen.c), the wave generator's phase and
sample counters, resonator memories. ``espeak_Cancel``, re-selecting the voice, seeding the noise
generator and even ``espeak_Terminate`` + ``espeak_Initialize`` leave some of it in place. So each
utterance is rendered by a freshly loaded copy of the library (``dlopen``, initialise, speak,
terminate, ``dlclose``), which starts from exactly the state a new process would: an utterance's
samples depend only on its text, voice and prosody, never on what was rendered before it.

Selecting a voice by name in a fresh library reads every voice file (about 250) to build the
list it selects from: 5 ms, more than rendering a sentence. So each voice is resolved once, in
the full data folder, to the file it selects, and the fresh copies are initialised on a view
of the data folder (symbolic links in ``$SERCLI_CACHE``) that lists only the voice files
resolved so far, where the name selects the same file (checked on every call). Reloading then
costs about 1 ms per utterance.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from sercli.api import RecordError, SercliError

LOCK = threading.Lock()

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1  # no espeakSSML / espeakPHONEMES flag: markup and [[...]] are read as plain text
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_EE_NOT_FOUND = 2
_VARIANT = re.compile(r"[A-Za-z0-9_-]+")

class _Voice(ctypes.Structure):  # the head of espeak_VOICE
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p)]


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


class _Loaded:
    """One ``dlopen`` of libespeak-ng, initialised; ``close()`` terminates and unloads it."""

    def __init__(self, path: str, data: Path) -> None:
        lib = ctypes.CDLL(path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # espeak-ng >= 1.52
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._lib = lib
        # espeak_Initialize wants the folder that *contains* espeak-ng-data.
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data.parent).encode(), 0)
        if self.sample_rate <= 0:
            self.close()
            raise SercliError(f"espeak-ng failed to initialise with data in {data}")
        self._variants = data / "voices" / "!v"
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._on_samples)  # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        import _ctypes

        lib, self._lib = self._lib, None
        if lib is not None:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)

    def _on_samples(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = carry on synthesising

    def set_voice(self, voice: str) -> str:
        """Select ``voice``; returns the identifier (voice file) espeak-ng selected."""
        _, plus, variant = voice.partition("+")
        # espeak-ng silently ignores an unknown "+variant"; a pool must not hold look-alikes.
        known = not plus or (_VARIANT.fullmatch(variant) and (self._variants / variant).is_file())
        err = self._lib.espeak_SetVoiceByName(voice.encode()) if known else _EE_NOT_FOUND
        if err == _EE_NOT_FOUND:
            raise SercliError(
                f"espeak-ng has no voice {voice!r} (use a language such as en-us or en-gb-x-rp, "
                "optionally with a +variant such as en-us+f3)"
            )
        if err:
            raise SercliError(f"espeak-ng could not select voice {voice!r} (error {err})")
        return (self._lib.espeak_GetCurrentVoice().contents.identifier or b"").decode()

    def synth(self, text: str, voice: str, prosody: Prosody, expect: str | None = None) -> np.ndarray | None:
        """Render ``text``; None when ``voice`` selected another file than ``expect``."""
        if self.set_voice(voice) != expect and expect is not None:
            return None
        for key, code in _PARAM.items():
            self._lib.espeak_SetParameter(code, int(getattr(prosody, key)), 0)
        data = text.encode("utf-8") + b"\0"
        if hasattr(self._lib, "espeak_ng_SetRandSeed"):
            # The breathy variants (+f1 ... +f5) mix in noise from espeak-ng's own generator,
            # whose seed otherwise comes from the clock. Seeded from what is said.
            self._lib.espeak_ng_SetRandSeed(zlib.crc32(repr((text, voice, prosody)).encode()))
        self._chunks = []
        err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        chunks, self._chunks = self._chunks, []
        if err:
            raise RecordError(f"espeak-ng failed on {text[:40]!r} (error {err})")
        if not chunks:
            raise RecordError(f"espeak-ng produced no audio for {text[:40]!r}")
        return np.concatenate(chunks)


class Espeak:
    """espeak-ng for this process. Every call runs in a freshly loaded library (see the module
    docstring), so no call sees state left by an earlier one. Call with ``LOCK`` held."""

    def __init__(self) -> None:
        import espeakng_loader

        self._path = espeakng_loader.get_library_path()
        self._data = Path(espeakng_loader.get_data_path())
        self._view = _view_folder(self._data)
        self._voices: dict[str, tuple[Path, str]] = {}  # voice -> (data folder, identifier)
        with self._fresh(self._data) as lib:
            self.sample_rate = lib.sample_rate

    @contextmanager
    def _fresh(self, data: Path) -> Iterator[_Loaded]:
        lib = _Loaded(self._path, data)
        try:
            yield lib
        finally:
            lib.close()

    def _resolve(self, voice: str) -> tuple[Path, str]:
        if voice not in self._voices:
            with self._fresh(self._data) as lib:
                identifier = lib.set_voice(voice)  # SercliError for an unknown voice
            data = self._data
            if self._view is not None and _add_to_view(self._view, self._data, identifier):
                data = self._view
            self._voices[voice] = data, identifier
        return self._voices[voice]

    def set_voice(self, voice: str) -> None:
        """Check that ``voice`` exists (SercliError if not)."""
        self._resolve(voice)

    def synth(self, text: str, voice: str, prosody: Prosody) -> np.ndarray:
        """Render ``text`` -> int16 samples at ``self.sample_rate``."""
        data, identifier = self._resolve(voice)
        with self._fresh(data) as lib:
            samples = lib.synth(text, voice, prosody, expect=identifier)
        if samples is None:  # the view selected another file: use the full data from now on
            self._voices[voice] = self._data, identifier
            with self._fresh(self._data) as lib:
                samples = lib.synth(text, voice, prosody)
        return samples

    def stays_loaded(self) -> bool:
        """True when the library is still mapped while no call runs: something else in the
        process holds it open, and its state would then carry over between utterances."""
        try:
            with open("/proc/self/maps") as fh:
                return any(self._path in line for line in fh)
        except OSError:  # not Linux: cannot tell
            return False


def _view_folder(data: Path) -> Path | None:
    """``.../espeak-ng-data`` with links to everything in ``data`` but the voice files in its
    sub-folders of ``lang`` and ``voices`` (added as voices are used). None if it cannot be made."""
    cache = Path(os.environ.get("SERCLI_CACHE") or Path.home() / ".cache" / "sercli")
    view = cache / f"espeak-{hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:12]}" / "espeak-ng-data"
    try:
        for entry in os.scandir(data):
            top = entry.name in ("lang", "voices")
            if top:
                (view / entry.name).mkdir(parents=True, exist_ok=True)
            for sub in os.scandir(entry.path) if top else [entry]:
                if not (top and sub.is_dir()):
                    _link(Path(sub.path), view / Path(sub.path).relative_to(data))
    except OSError:
        return None
    return view


def _add_to_view(view: Path, data: Path, identifier: str) -> bool:
    """Link the files ``identifier`` (``gmw/en-US+f3``) names into ``view``."""
    base, _, variant = identifier.partition("+")
    wanted = [f"{base}"] + ([f"!v/{variant}"] if variant else [])
    try:
        for name in wanted:
            for folder in ("lang", "voices"):
                if (data / folder / name).is_file():
                    _link(data / folder / name, view / folder / name)
                    break
            else:
                return False
    except OSError:
        return False
    return True


def _link(target: Path, link: Path) -> None:
    if os.path.lexists(link):
        if os.path.realpath(link) == os.path.realpath(target):
            return
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(target)
    except FileExistsError:  # another process made it at the same moment
        pass


def voice_languages(data: Path | None = None) -> dict[str, tuple[str, ...]]:
    """{voice name: languages it speaks} of the installed espeak-ng, from its voice files
    (``espeak-ng-data/lang/<family>/<voice>``, each with ``language CODE [priority]`` lines). The
    name is the voice's first language code (``de``, ``fr-fr``, ``en-us``), which selects it."""
    if data is None:
        import espeakng_loader

        data = Path(espeakng_loader.get_data_path())
    return _voice_languages(str(data))


@lru_cache(maxsize=None)
def _voice_languages(data: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for root, _, names in os.walk(Path(data) / "lang"):
        for name in sorted(names):
            try:
                lines = (Path(root) / name).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            codes = [parts[1].lower() for parts in (line.split() for line in lines)
                     if len(parts) >= 2 and parts[0] == "language"]
            if codes:
                out.setdefault(name.lower(), tuple(dict.fromkeys(codes)))
    return dict(sorted(out.items()))


_instance: Espeak | None = None


def espeak() -> Espeak:
    """The process-wide handle. Call with LOCK held."""
    global _instance
    if _instance is None:
        _instance = Espeak()
        if _instance.stays_loaded():
            from sercli.api import warn

            warn("libespeak-ng is held open by another module in this process: utterances may "
                 "depend on what was rendered before them")
    return _instance
