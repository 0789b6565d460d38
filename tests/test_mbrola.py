"""The ``mbrola`` TTS engine: MBROLA diphone voices behind espeak-ng (system programs, short sentences)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from sercli.core import plugins as pl
from sercli.core.errors import RecordError, SercliError

from conftest import run_here

mbrola = pytest.importorskip("sercli_espeak.mbrola")
MbrolaEngine = mbrola.MbrolaEngine

SENTENCE = "I really need you to call me back about the plans for the weekend."


def _missing() -> str | None:
    if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None:
        return "the espeak-ng and mbrola programs are not installed"
    tts = MbrolaEngine()
    absent = [v for v in ("mb-us1", "mb-us2", "mb-de1") if tts._database(v, check=False) is None]
    return f"MBROLA voices {', '.join(absent)} are not installed" if absent else None


pytestmark = pytest.mark.skipif(bool(_missing()), reason=f"{_missing()} ({mbrola.INSTALL})")


def plain() -> MbrolaEngine:
    """Neutral prosody as espeak-ng's own defaults, no per-voice offsets."""
    return MbrolaEngine(options=MbrolaEngine.Options(prosody=0, voice_variation=False))


def system_render(voice: str, text: str, path) -> np.ndarray:
    """``text`` as the espeak-ng program itself speaks it with ``voice`` (at 16 kHz)."""
    from sercli.api import resample

    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    wav, rate = sf.read(path, dtype="float32")
    return resample(wav, rate, 16000) if rate != 16000 else wav


def ltas(wav: np.ndarray) -> np.ndarray:
    """Long-term average spectrum of the voiced part, dB in 20 log-spaced bands, mean removed."""
    n = 1024
    frames = np.lib.stride_tricks.sliding_window_view(wav, n)[::256] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames)) ** 2
    energy = power.sum(1)
    power = power[energy > energy.max() * 1e-3].mean(0)
    freqs, edges = np.fft.rfftfreq(n, 1 / 16000), np.geomspace(150, 7000, 21)
    bands = 10 * np.log10([power[(freqs >= a) & (freqs < b)].mean() for a, b in zip(edges[:-1], edges[1:])])
    return bands - bands.mean()


def f0_of(path) -> dict[str, float]:
    import opensmile

    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    row = smile.process_file(str(path)).iloc[0]
    return {"f0": row["F0semitoneFrom27.5Hz_sma3nz_amean"], "range": row["F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2"],
            "loudness": row["loudness_sma3_amean"]}


def test_registered_by_the_espeak_plugin(monkeypatch):
    monkeypatch.setenv("SERCLI_LOAD_PLUGINS", "espeak")
    pl.reset()
    try:
        tts = pl.create("tts", "mbrola", {"prosody": "1.5"})
        also = pl.create("tts", "espeak", {})
    finally:
        pl.reset()
    assert isinstance(tts, MbrolaEngine) and tts.options.prosody == 1.5 and also.name == "espeak"


def test_the_audio_is_the_diphone_voice_not_a_formant_one(tmp_path):
    """Checked against the programs, not the engine's word: the engine's samples are espeak-ng's
    own MBROLA rendering (up to gain), and the formant voice of the same text is another sound."""
    tts = plain()
    for voice in ("mb-us1", "mb-us2"):
        tts.synthesize(SENTENCE, "neutral", voice, tmp_path / f"{voice}.wav")
        ours = sf.read(tmp_path / f"{voice}.wav", dtype="float32")[0]
        theirs = system_render(voice, SENTENCE, tmp_path / f"sys-{voice}.wav")
        assert len(ours) == len(theirs) and np.corrcoef(ours, theirs)[0, 1] > 0.999, voice
        formant = system_render("en-us", SENTENCE, tmp_path / "formant.wav")
        n = min(len(ours), len(formant))
        assert abs(np.corrcoef(ours[:n], formant[:n])[0, 1]) < 0.3
        assert np.sqrt(np.mean((ltas(ours) - ltas(formant)) ** 2)) > 3.0  # dB; 0.0 for the same voice
        assert np.sqrt(np.mean((ltas(ours) - ltas(theirs)) ** 2)) < 0.5


def test_a_missing_or_broken_database_fails_in_one_line_never_falls_back(tmp_path):
    copy = tmp_path / "mbrola"
    (copy / "us1").mkdir(parents=True)
    shutil.copy(MbrolaEngine()._database("mb-us1"), copy / "us1" / "us1")
    here = MbrolaEngine(options=MbrolaEngine.Options(prosody=0, voice_variation=False, mbrola_dir=str(copy)))
    here.synthesize("Call me back.", "neutral", "mb-us1", tmp_path / "ok.wav")
    plain().synthesize("Call me back.", "neutral", "mb-us1", tmp_path / "ref.wav")
    assert (sf.read(tmp_path / "ok.wav")[0] == sf.read(tmp_path / "ref.wav")[0]).all()
    cases = {
        "garbage": (lambda p: p.write_bytes(b"\x00not a diphone database" * 50), r"mbrola failed .*reinstall mbrola-us1"),
        "empty": (lambda p: p.write_bytes(b""), r"unreadable or empty: reinstall mbrola-us1"),
        "gone": (lambda p: p.unlink(), r"'mb-us1' is not installed .*apt-get install mbrola-us1"),
    }
    for name, (damage, message) in cases.items():
        damage(copy / "us1" / "us1")
        with pytest.raises(SercliError, match=message) as info:
            here.synthesize("Call me back.", "neutral", "mb-us1", tmp_path / f"{name}.wav")
        assert "\n" not in str(info.value) and not (tmp_path / f"{name}.wav").exists(), name
    assert not list(tmp_path.glob(".*tmp"))


def test_the_database_is_part_of_the_cache_key(tmp_path, monkeypatch):
    copy = tmp_path / "us1"
    copy.mkdir()
    shutil.copy(MbrolaEngine()._database("mb-us1"), copy / "us1")
    monkeypatch.setenv("SERCLI_MBROLA_DIR", str(tmp_path))
    before = MbrolaEngine().identity()
    with open(copy / "us1", "ab") as fh:
        fh.write(b"\0")
    after = MbrolaEngine().identity()
    assert before["databases"]["mb-us1"] != after["databases"]["mb-us1"]
    assert {k: v for k, v in before.items() if k != "databases"} == {k: v for k, v in after.items() if k != "databases"}
    assert MbrolaEngine(options=MbrolaEngine.Options(prosody=1.5)).identity() != after
    assert {"espeak_ng", "mbrola", "rules"} <= set(after)


def test_unknown_voice_and_missing_voice_package_one_line_each(tmp_path):
    tts = MbrolaEngine()
    with pytest.raises(SercliError, match=r"mbrola has no voice 'en-us' \(espeak-ng's MBROLA voices: .*mb-us1"):
        tts.synthesize("Hello there.", "neutral", "en-us", tmp_path / "x.wav")
    absent = next(v for v in ("mb-fr1", "mb-it3", "mb-es1", "mb-nl2") if tts._database(v, check=False) is None)
    with pytest.raises(SercliError, match=rf"'{absent}' is not installed .*apt-get install mbrola-{absent[3:]}$"):
        tts.synthesize("Hello there.", "neutral", absent, tmp_path / "x.wav")
    # a database only in -O mbrola_dir but not where espeak-ng looks: its front end refuses, one line
    fake = tmp_path / "db" / absent[3:]
    fake.parent.mkdir()
    shutil.copy(tts._database("mb-us1"), fake)
    elsewhere = MbrolaEngine(options=MbrolaEngine.Options(mbrola_dir=str(fake.parent)))
    with pytest.raises(SercliError, match=rf"espeak-ng could not load voice '{absent}': apt-get install"):
        elsewhere.synthesize("Hello there.", "neutral", absent, tmp_path / "x.wav")
    with pytest.raises(SercliError, match="no prosody rules for emotion 'joy'"):
        tts.synthesize("Hello there.", "joy", "mb-us1", tmp_path / "x.wav")
    with pytest.raises(RecordError, match="empty"):
        tts.synthesize(" \x00 ", "happy", "mb-us1", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_emotions_change_tempo_pitch_range_and_loudness(tmp_path):
    tts = MbrolaEngine()
    m, length = {}, {}
    for emotion in ("neutral", "angry", "sad", "boredom"):
        path = tmp_path / f"{emotion}.wav"
        tts.synthesize(SENTENCE, emotion, "mb-us2", path)
        length[emotion], m[emotion] = sf.info(str(path)).duration, f0_of(path)
    assert length["sad"] > 1.3 * length["angry"] and length["angry"] < length["neutral"] < length["sad"]
    assert m["sad"]["f0"] + 1 < m["neutral"]["f0"] < m["angry"]["f0"] - 1, m
    assert m["boredom"]["range"] < m["sad"]["range"] < m["neutral"]["range"] < m["angry"]["range"], m
    assert m["sad"]["loudness"] < m["neutral"]["loudness"] < m["angry"]["loudness"], m


def test_seeded_and_the_voices_differ(tmp_path):
    tts = MbrolaEngine(options=MbrolaEngine.Options(prosody_jitter=0.2))
    for i in range(2):
        tts.synthesize(SENTENCE, "happy", "mb-us1", tmp_path / f"a{i}.wav")
    assert (tmp_path / "a0.wav").read_bytes() == (tmp_path / "a1.wav").read_bytes()
    tts.synthesize(SENTENCE, "happy", "mb-us2", tmp_path / "b.wav")
    female, male = f0_of(tmp_path / "a0.wav")["f0"], f0_of(tmp_path / "b.wav")["f0"]
    assert female > male + 5  # semitones: us1 is a woman, us2 a man


def test_voices_follow_the_records_language(tmp_path):
    tts = MbrolaEngine()
    english = tts.voices("sad")
    assert english == tts.voices("sad", language="en-GB") and {"mb-us1", "mb-us2"} <= set(english)
    german = tts.voices("angry", language="de")
    assert "mb-de1" in german and all(v.startswith("mb-de") for v in german)
    with pytest.raises(SercliError, match="no MBROLA voice for language 'tlh'"):
        tts.voices("sad", language="tlh")
    assert MbrolaEngine(options=MbrolaEngine.Options(voices="mb-us2")).voices("sad", language="de") == ["mb-us2"]
    tts.synthesize("Der Zug nach München fährt um halb sieben von Gleis drei ab.", "neutral", german[0], tmp_path / "de.wav")
    wav, rate = sf.read(tmp_path / "de.wav", dtype="float32")
    assert rate == 16000 and len(wav) > 2 * rate and np.sqrt(np.mean(wav**2)) > 0.02


def test_synthesize_resumes_and_pools_mix_engines_through_the_cli(tmp_path):
    env = {"SERCLI_LOAD_PLUGINS": "template,espeak"}
    run_here("gen-text", "-e", "angry,sad", "-n", "2", "-o", tmp_path / "t.jsonl", env=env, check=True)
    args = ["synthesize", tmp_path / "t.jsonl", "-t", "mbrola", "-d", tmp_path / "wav", "--voices-per-text", "2",
            "-o", tmp_path / "m.jsonl"]
    run_here(*args, env=env, check=True)
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["speaker"].startswith("mbrola:mb-") for r in records)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").glob("*.wav")}
    again = run_here(*args, env=env, check=True)  # nothing left to do: no file rendered anew
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").glob("*.wav")} == stamps
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 8, again.stderr
    # another engine's pool, then one pool of both: speakers are engine:voice, ids do not clash
    run_here("synthesize", tmp_path / "t.jsonl", "-d", tmp_path / "wav", "-o", tmp_path / "e.jsonl", env=env,
             check=True)
    both = [json.loads(line) for f in ("m.jsonl", "e.jsonl") for line in (tmp_path / f).read_text().splitlines()]
    assert len({r["id"] for r in both}) == len(both) == 12
    assert {r["speaker"].split(":")[0] for r in both} == {"mbrola", "espeak"}
