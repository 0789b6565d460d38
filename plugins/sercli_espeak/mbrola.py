"""The ``mbrola`` TTS engine: espeak-ng as the front end, MBROLA diphone voices as the back end.

Diphone voices are concatenated from recorded speech, so they sound much closer to a person
than espeak-ng's formant voices. The pipeline is explicit, so no formant voice can stand in:

1. ``espeak-ng -v mb-us1 -q --pho`` turns the text into MBROLA phonemes (phoneme, duration,
   pitch points), with the emotion's rate, pitch and word gap (the espeak engine's rule table,
   :func:`sercli_espeak.engine.emotion_prosody`);
2. the pitch range is applied to that contour here (espeak-ng's command line has no range
   option): each pitch point's distance in semitones from the utterance's mean is scaled;
3. the ``mbrola`` program renders the phonemes with the voice's diphone database, found in
   ``-O mbrola_dir`` (default ``$SERCLI_MBROLA_DIR``, else ``/usr/share/mbrola``); volume is a
   gain on its samples.

Without the database step 3 fails, and the engine says so in one line; it never falls back.
(espeak-ng's library in the espeakng-loader wheel, used by the ``espeak`` engine, silently
speaks a formant voice when asked for an MBROLA one, hence the system programs.)

System packages (Debian, components ``contrib non-free``): ``espeak-ng mbrola mbrola-us1
mbrola-us2 mbrola-us3 mbrola-en1 mbrola-de1`` ... ``mbrola-de8``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field

from sercli.api import RecordError, SercliError, TTSEngine
from sercli_espeak.engine import _CONTROL, ProsodyOptions, emotion_prosody, rules, rules_digest
from sercli_espeak.library import Prosody

ENGLISH = ["mb-us1", "mb-us2", "mb-us3", "mb-en1"]  # us1 female; us2, us3, en1 (British) male
GERMAN = [f"mb-de{i}" for i in range(1, 9)]  # odd numbers female, even male
PACKAGES = "espeak-ng mbrola " + " ".join(f"mbrola-{v[3:]}" for v in ENGLISH + GERMAN)
INSTALL = (f"apt-get install {PACKAGES} (Debian: add 'contrib non-free' to the apt sources first)")
DEFAULT_DIR = "/usr/share/mbrola"
GAIN = 1.72  # what espeak-ng itself applies to MBROLA's samples at amplitude 100
_VOICE = re.compile(r"mb-[a-z0-9-]+")
_TIMEOUT = 120


class MbrolaEngine(TTSEngine):
    name = "mbrola"
    description = "MBROLA diphone voices (offline, espeak-ng front end) with per-emotion prosody rules"
    max_concurrency = 2  # each utterance runs two short processes

    class Options(ProsodyOptions):
        voices: str = Field("", description="comma-separated MBROLA voices as espeak-ng names them (mb-us1, "
                                            "mb-de5; default: the installed ones of the records' language)")
        mbrola_dir: str = Field("", description="folder of the MBROLA databases (default: $SERCLI_MBROLA_DIR, "
                                                "else /usr/share/mbrola)")

    # --- voices -------------------------------------------------------------------------------

    def voices(self, emotion: str | None = None, language: str | None = None) -> list[str]:
        """The ``voices`` option, else the installed voices of ``language`` (English when
        None: us1, us2, us3, en1; German: de1 ... de8; another language: espeak-ng's MBROLA
        voices for it). SercliError, naming the packages, when none is installed."""
        if emotion is not None:
            rules(emotion, self.name)
        chosen = [v.strip() for v in self.options.voices.split(",") if v.strip()]
        if chosen:
            return chosen
        lang = (language or "en").strip().lower().replace("_", "-")
        base = lang.split("-")[0]
        table = mbrola_voices()
        if base == "en":
            wanted = ENGLISH
        elif base == "de":
            wanted = GERMAN
        else:
            wanted = [v for v, (codes, _) in table.items() if any(c == lang or c.split("-")[0] == base for c in codes)
                      and not v.endswith("-en")]
        pool = [v for v in wanted if v in table and self._database(v, check=False) is not None]
        if not pool:
            if not wanted:
                raise SercliError(f"mbrola: espeak-ng has no MBROLA voice for language {language!r}")
            raise SercliError(f"mbrola: no MBROLA voice for {language or 'en'!r} is installed "
                              f"({', '.join(wanted)}): {INSTALL}")
        return pool

    def _database(self, voice: str, check: bool = True) -> Path | None:
        """The diphone database of ``voice``; with ``check`` a SercliError (one line: what to
        install) when it is missing or unreadable, else None."""
        table = mbrola_voices()
        if voice not in table:
            if not check:
                return None
            known = ", ".join(v for v in table if not v.endswith("-en")) or "none"
            raise SercliError(f"mbrola has no voice {voice!r} (espeak-ng's MBROLA voices: {known})")
        db = table[voice][1]
        folder = Path(self.options.mbrola_dir or os.environ.get("SERCLI_MBROLA_DIR") or DEFAULT_DIR)
        for path in (folder / db, folder / db / db, folder / "voices" / db):
            if path.is_file():
                if os.access(path, os.R_OK) and path.stat().st_size > 0:
                    return path
                if check:
                    raise SercliError(f"mbrola: the database of voice {voice!r} ({path}) is unreadable or "
                                      f"empty: reinstall mbrola-{db}")
                return None
        if check:
            raise SercliError(f"mbrola: voice {voice!r} is not installed (no database {db!r} in {folder}): "
                              f"apt-get install mbrola-{db}")
        return None

    # --- prosody ------------------------------------------------------------------------------

    def prosody(self, emotion: str, voice: str, text: str | None = None) -> Prosody:
        """espeak-ng's parameters for ``emotion`` by ``voice`` (the espeak engine's rules)."""
        return emotion_prosody(emotion, voice, text, self.options.prosody, self.options.voice_variation,
                               self.options.prosody_jitter, self.name)

    # --- rendering ----------------------------------------------------------------------------

    def phonemes(self, text: str, voice: str, prosody: Prosody) -> str:
        """The MBROLA phoneme file espeak-ng makes of ``text`` (range applied)."""
        programs()
        _, db = mbrola_voices()[voice]
        cmd = ["espeak-ng", "-v", voice, "-q", "--pho", "-b", "1", "--stdin", "-s", str(prosody.rate),
               "-p", str(min(prosody.pitch, 99)), "-g", str(prosody.wordgap)]
        proc = _run(cmd, text.encode("utf-8"))
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0 or "mbrola voice" in err.lower():
            if "mbrola" in err.lower():
                raise SercliError(f"mbrola: espeak-ng could not load voice {voice!r}: apt-get install mbrola-{db}")
            raise SercliError(f"mbrola: espeak-ng failed for voice {voice!r}: {_last_line(err)}")
        pho = proc.stdout.decode("utf-8", "replace")
        return scale_range(pho, prosody.range / 50.0)

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        import soundfile as sf

        from sercli.api import resample, write_wav

        clean = " ".join(_CONTROL.sub(" ", text).split())
        if not clean:
            raise RecordError("cannot synthesise empty text")
        prosody = self.prosody(emotion, voice, clean)
        database = self._database(voice)
        pho = self.phonemes(clean, voice, prosody)
        if not any(line.strip() and not line.startswith(";") for line in pho.splitlines()):
            raise RecordError(f"espeak-ng made no phonemes of {clean[:40]!r}")
        with tempfile.TemporaryDirectory(prefix="sercli-mbrola-") as tmp:
            out = Path(tmp) / "out.wav"
            # -e: a diphone missing from the database is skipped, not fatal (as espeak-ng does)
            proc = _run(["mbrola", "-e", str(database), "-", str(out)], pho.encode("utf-8"))
            if proc.returncode != 0 or not out.is_file():
                raise SercliError(f"mbrola failed with database {database} (voice {voice!r}): "
                                  f"{_last_line(proc.stderr.decode('utf-8', 'replace'))}; reinstall mbrola-"
                                  f"{mbrola_voices()[voice][1]}")
            samples, rate = sf.read(str(out), dtype="float32")
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        if samples.size == 0 or not np.any(samples):
            raise RecordError(f"mbrola produced no audio for {clean[:40]!r}")
        wav = resample(samples * GAIN * prosody.volume / 100.0, rate, self.sample_rate)
        write_wav(path, np.clip(wav, -1.0, 1.0), self.sample_rate)

    # --- identity -----------------------------------------------------------------------------

    def provenance(self) -> dict:
        espeak_version, mbrola_version = versions()
        return {**super().provenance(), "espeak_ng": espeak_version, "mbrola": mbrola_version}

    def identity(self) -> dict:
        """What decides the audio besides text, emotion and voice: the prosody settings and
        rules, the espeak-ng and mbrola versions and the installed databases' contents (by a
        fingerprint: a database installed later changes it too, and audio is rendered anew)."""
        espeak_version, mbrola_version = versions()
        databases = {v: _fingerprint(p) for v in mbrola_voices() if (p := self._database(v, check=False))}
        return {
            "plugin": self.name,
            "prosody": self.options.prosody,
            "voice_variation": self.options.voice_variation,
            **({"prosody_jitter": self.options.prosody_jitter} if self.options.prosody_jitter else {}),
            "rules": rules_digest(),
            "espeak_ng": espeak_version,
            "mbrola": mbrola_version,
            "databases": databases,
        }


def scale_range(pho: str, factor: float) -> str:
    """``pho`` with each pitch point's distance (in semitones) from the utterance's mean pitch
    multiplied by ``factor`` (1 = unchanged, 0 = monotone)."""
    lines = [line.split() for line in pho.splitlines()]
    pitches = [float(p) for parts in lines if parts and not parts[0].startswith(";")
               for p in parts[3::2] if _number(p)]
    if not pitches or factor == 1.0:
        return pho
    mean = sum(math.log(p) for p in pitches if p > 0) / max(1, sum(1 for p in pitches if p > 0))
    out = []
    for parts in lines:
        if len(parts) >= 4 and not parts[0].startswith(";"):
            for i in range(3, len(parts), 2):
                if _number(parts[i]) and float(parts[i]) > 0:
                    parts[i] = str(int(round(math.exp(mean + factor * (math.log(float(parts[i])) - mean)))))
        out.append("\t".join(parts))
    return "\n".join(out) + "\n"


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def programs() -> None:
    """SercliError (one line: what to install) when espeak-ng or mbrola is not on PATH."""
    missing = [p for p in ("espeak-ng", "mbrola") if shutil.which(p) is None]
    if missing:
        raise SercliError(f"the mbrola engine needs the program{'s' if len(missing) > 1 else ''} "
                          f"{' and '.join(missing)}: {INSTALL}")


@lru_cache(maxsize=None)
def _espeak_data() -> Path:
    programs()
    proc = _run(["espeak-ng", "--version"])
    m = re.search(r"Data at:\s*(\S.*)$", proc.stdout.decode("utf-8", "replace").strip())
    if not m:
        raise SercliError("mbrola: cannot tell where espeak-ng keeps its data (espeak-ng --version)")
    return Path(m.group(1).strip())


@lru_cache(maxsize=None)
def mbrola_voices() -> dict[str, tuple[tuple[str, ...], str]]:
    """{voice name (mb-us1): (its languages, its MBROLA database name)} from espeak-ng's voice
    files (``espeak-ng-data/voices/mb``), whether or not the database is installed."""
    out = {}
    folder = _espeak_data() / "voices" / "mb"
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not _VOICE.fullmatch(entry.name):
            continue
        try:
            lines = entry.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        parts = [line.split() for line in lines]
        codes = tuple(p[1].lower() for p in parts if len(p) >= 2 and p[0] == "language")
        db = next((p[1] for p in parts if len(p) >= 2 and p[0] == "mbrola"), None)
        if db:
            out[entry.name] = codes, db
    return out


@lru_cache(maxsize=None)
def versions() -> tuple[str, str]:
    """(espeak-ng's version, mbrola's version) as the programs print them."""
    programs()
    espeak = _run(["espeak-ng", "--version"]).stdout.decode("utf-8", "replace")
    m = re.search(r"text-to-speech:\s*(\S+)", espeak)
    banner = _run(["mbrola"])  # prints its banner and usage, exits non-zero
    text = (banner.stdout + banner.stderr).decode("utf-8", "replace")
    n = re.search(r"MBROLA\s+(\S+)", text)
    return (m.group(1) if m else espeak.strip()[:40]), (n.group(1) if n else "?")


@lru_cache(maxsize=None)
def _fingerprint_of(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha1(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 16))
        fh.seek(max(0, size - (1 << 16)))
        h.update(fh.read())
    return h.hexdigest()[:16]


def _fingerprint(path: Path) -> str:
    """Size and the first and last 64 KiB of a database (cheap, and changes with its content)."""
    st = path.stat()
    return _fingerprint_of(str(path), st.st_size, st.st_mtime_ns)


def _run(cmd: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, input=data, capture_output=True, timeout=_TIMEOUT,
                              env={**os.environ, "LC_ALL": "C.UTF-8"})
    except FileNotFoundError:
        programs()
        raise
    except subprocess.TimeoutExpired:
        raise RecordError(f"{cmd[0]} took more than {_TIMEOUT} s") from None


def _last_line(err: str) -> str:
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
