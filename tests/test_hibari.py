"""The ``hibari`` TTS engine (hibari-tts, the voice heart in its wheel; short sentences)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from sercli.core.errors import RecordError, SercliError

from conftest import engine_from_plugin, run_here

import sercli_hibari  # noqa: E402  (imports nothing of hibari-tts)
from sercli_hibari.engine import STYLES, HibariEngine  # noqa: E402

needs_hibari = pytest.mark.skipif(importlib.util.find_spec("hibari") is None,
                                  reason="hibari-tts is not installed (pip install 'sercli[hibari]')")
SENTENCE = "I really need you to call me back about the plans for the weekend."


def one_line(fn, pattern):
    with pytest.raises(SercliError, match=pattern) as info:
        fn()
    assert "\n" not in str(info.value)
    return str(info.value)


def speech_measures(wav: np.ndarray, rate: int = 16000) -> dict:
    """Not the engine's word: frame energy and an autocorrelation pitch track of the audio."""
    n, hop = int(0.04 * rate), int(0.01 * rate)
    frames = np.lib.stride_tricks.sliding_window_view(wav.astype(np.float64), n)[::hop]
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = frames[energy > energy.max() - 30]
    lags = np.arange(rate // 400, rate // 70)
    f0, voiced = [], 0
    for frame in loud:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[n - 1:]
        lag = lags[np.argmax(ac[lags])]
        if ac[lag] > 0.5 * ac[0]:
            voiced += 1
            f0.append(rate / lag)
    return {"rms": float(np.sqrt(np.mean(wav**2))), "loud": len(loud) / len(frames),
            "voiced": voiced / max(len(loud), 1), "f0": float(np.median(f0)) if f0 else 0.0,
            "energy_spread": float(np.std(energy[energy > energy.max() - 50]))}


@pytest.fixture(scope="module")
def tts():
    return HibariEngine()


def render(engine, tmp_path, name, text=SENTENCE, emotion="neutral", voice="heart"):
    engine.synthesize(text, emotion, voice, tmp_path / f"{name}.wav")
    return sf.read(tmp_path / f"{name}.wav", dtype="float32")[0]


def test_registers_as_a_plugin(monkeypatch):
    engine = engine_from_plugin(monkeypatch, sercli_hibari, "hibari", {"prosody": "0.5", "seed": "3"})
    assert isinstance(engine, HibariEngine) and engine.options.prosody == 0.5 and engine.closed_voices


def test_without_the_package_one_line_says_what_to_install(monkeypatch):
    for mod in ("hibari", "hibari.tts", "hibari.voices"):
        monkeypatch.setitem(sys.modules, mod, None)  # import hibari raises ImportError
    one_line(lambda: HibariEngine().voices(), r"the hibari engine needs hibari-tts: pip install 'sercli\[hibari\]'")


@needs_hibari
def test_speaks_hibari_s_voice(tmp_path, tts):
    """Speech, by the audio alone (energy rising and falling, voiced frames with a female pitch),
    and hibari's own rendering of the sentence with the voice heart (no engine in between)."""
    from hibari import Hibari

    from sercli.api import resample

    ours = render(tts, tmp_path, "engine")
    info = sf.info(str(tmp_path / "engine.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16") and 2.5 < info.duration < 6.0
    m = speech_measures(ours)
    assert m["rms"] > 0.03 and 0.4 < m["loud"] < 0.98 and m["voiced"] > 0.4 and m["energy_spread"] > 5, m
    assert 140 < m["f0"] < 320, m  # heart is a female voice
    from hibari.g2p import G2P

    assert isinstance(tts._model("heart").g2p, G2P)  # hibari's own text analysis, shared to save a second
    heart = Hibari(voice="heart", g2p=tts._model("heart").g2p)
    direct = heart(SENTENCE, speed=1.0, seed=tts.utterance_seed(SENTENCE, "neutral", "heart"))
    direct = resample(direct, 24000, 16000)
    assert len(direct) == len(ours)
    assert np.corrcoef(direct, ours)[0, 1] > 0.999
    noise = np.random.default_rng(0).normal(0, m["rms"], len(ours)).astype(np.float32)
    assert speech_measures(noise)["voiced"] < 0.1  # the measures tell noise from speech


@needs_hibari
def test_seeded_and_independent_of_what_came_before(tmp_path, tts):
    render(tts, tmp_path, "first", "Not again.", "angry")
    a, b = render(tts, tmp_path, "a", emotion="happy"), render(tts, tmp_path, "b", emotion="happy")
    render(HibariEngine(), tmp_path, "fresh", emotion="happy")  # a new engine, nothing rendered before
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes() == (tmp_path / "fresh.wav").read_bytes()
    other = render(HibariEngine(options=HibariEngine.Options(seed=1)), tmp_path, "s1", emotion="happy")
    assert (tmp_path / "s1.wav").read_bytes() != (tmp_path / "a.wav").read_bytes() and len(other) == len(a)
    assert HibariEngine(options=HibariEngine.Options(seed=1)).identity() != tts.identity()
    assert HibariEngine(options=HibariEngine.Options(prosody=2)).identity() != tts.identity()


@needs_hibari
def test_emotions_set_tempo_and_loudness_as_the_table_says(tmp_path, tts):
    from sercli_espeak.engine import PROSODY

    length, rms = {}, {}
    for emotion in ("neutral", "angry", "sad", "fear"):
        wav = render(tts, tmp_path, emotion, emotion=emotion)
        length[emotion], rms[emotion] = len(wav), np.sqrt(np.mean(wav[np.abs(wav) > 0.01] ** 2))
    for emotion in ("sad", "angry"):  # one sentence, no pause: the length follows the espeak rules' rate
        expected = PROSODY["neutral"].rate / PROSODY[emotion].rate
        assert abs(length[emotion] / length["neutral"] - expected) < 0.1 * expected, (emotion, length)
    assert length["fear"] < 0.9 * length["neutral"] and length["fear"] < length["angry"], length
    assert rms["sad"] < 0.8 * rms["neutral"] < rms["angry"], rms
    flat = HibariEngine(options=HibariEngine.Options(prosody=0))
    assert flat.style("sad") == STYLES["neutral"]
    assert len(render(flat, tmp_path, "flat-sad", emotion="sad")) == length["neutral"]
    two = render(tts, tmp_path, "two", SENTENCE + " Then we can talk.", "sad")  # the pause between sentences
    alone = render(tts, tmp_path, "alone", "Then we can talk.", "sad")
    assert len(two) - length["sad"] - len(alone) == pytest.approx(STYLES["sad"].pause * 16000, abs=400)
    assert set(STYLES) >= {"neutral", "angry", "happy", "sad", "fear", "disgust", "surprise", "calm", "boredom"}


@needs_hibari
def test_voices_are_the_files_that_are_there(tmp_path, monkeypatch, tts):
    """Only the voices whose model files are present are offered; a file that is not the
    registry's is refused before it speaks."""
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path / "home"))
    assert tts.voices() == ["heart"]
    msg = one_line(lambda: tts.synthesize("Hi there.", "happy", "emma", tmp_path / "x.wav"),
                   r"hibari has no voice 'emma' \(voices: heart; emma, fenrir, fable, kore are downloaded")
    assert str(tmp_path / "home") in msg
    one_line(lambda: tts.synthesize("Hi there.", "happy", "nobody", tmp_path / "x.wav"),
             r"hibari has no voice 'nobody' \(voices: heart; .*hibari --voice NAME")
    from hibari import voices

    (tmp_path / "home").mkdir()
    shutil.copy(voices.voice_path("heart"), tmp_path / "home" / voices.VOICES["emma"]["file"])
    assert tts.voices("sad") == ["heart", "emma"]
    one_line(lambda: tts.synthesize("Hi there.", "happy", "emma", tmp_path / "x.wav"),
             r"hibari voice 'emma': .* is not the file hibari's registry names")
    assert not (tmp_path / "x.wav").exists()


@needs_hibari
def test_bad_input_one_line_each(tmp_path, tts):
    one_line(lambda: tts.voices("sad", language="de"), r"hibari speaks English only, the records are in 'de'")
    assert tts.voices("sad", language="en-GB") == tts.voices()
    one_line(lambda: tts.synthesize("Hi there.", "joy", "heart", tmp_path / "x.wav"), "no settings for emotion 'joy'")
    with pytest.raises(RecordError, match="empty"):
        tts.synthesize(" \x00 ", "happy", "heart", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


@needs_hibari
@pytest.mark.skipif("hibari" not in {ep.name for ep in importlib.metadata.entry_points(group="sercli")},
                    reason="the hibari entry point is not installed yet (pip install -e . after pulling pyproject.toml)")
def test_synthesize_through_the_cli_resumes_and_refuses_bad_input(tmp_path):
    env = {"SERCLI_LOAD_PLUGINS": "template,espeak,hibari"}
    run_here("gen-text", "-e", "angry,sad", "-n", "1", "-o", tmp_path / "t.jsonl", env=env, check=True)
    args = ["synthesize", tmp_path / "t.jsonl", "-t", "hibari", "-d", tmp_path / "wav", "-o", tmp_path / "h.jsonl"]
    run_here(*args, env=env, check=True)
    run_here("synthesize", tmp_path / "t.jsonl", "-d", tmp_path / "ewav", "-o", tmp_path / "e.jsonl", env=env, check=True)
    records = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    espeak = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["speaker"] for r in records} == {"hibari:heart"}
    assert all(set(r) == set(espeak[0]) and r["source"] == "synthetic" and r["voice"] == "heart" for r in records)
    made = {k for r in records for k in r["provenance"]["synthesize"]} - {"hibari_tts", "onnxruntime"}
    assert made == set(espeak[0]["provenance"]["synthesize"]) - {"espeakng_loader"}, made
    assert all(sf.info(r["audio"]).duration == pytest.approx(r["duration"], abs=0.01) for r in records)

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").glob("*.wav")}
    text = (tmp_path / "h.jsonl").read_text()
    again = run_here(*args, env=env, check=True)  # resumed: nothing rendered anew
    assert "Resuming" in again.stderr and (tmp_path / "h.jsonl").read_text() == text
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").glob("*.wav")} == stamps and len(stamps) == 2

    def refused(*cmd, pattern):
        proc = run_here(*cmd, env=env)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
        assert proc.returncode != 0 and len(errors) == 1 and pattern in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr

    refused(*args[:-2], "--voices", "nobody", "-d", tmp_path / "bad", "-o", tmp_path / "q.jsonl",
            pattern="has no voice 'nobody' (voices: heart; emma, fenrir")
    audio = tmp_path / "audio.jsonl"  # recorded speech: id, audio, emotion, speaker
    audio.write_text("".join(json.dumps({k: r[k] for k in ("id", "audio", "emotion", "speaker")}) + "\n"
                             for r in espeak))
    refused("synthesize", audio, "-t", "hibari", "-d", tmp_path / "bad", "-o", tmp_path / "q.jsonl",
            pattern="is recorded speech (audio, no text)")
    assert not (tmp_path / "q.jsonl").exists() and not list((tmp_path / "bad").glob("*.wav"))
