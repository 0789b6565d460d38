"""The offline ``espeak`` TTS engine (real espeak-ng through ctypes, tiny sentences)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import soundfile as sf

from sercli.core import plugins as pl
from sercli.core.errors import RecordError, SercliError
from sercli_espeak.engine import DEFAULT_VOICES, PROSODY, EspeakEngine
from sercli_espeak.library import LOCK, espeak

from conftest import run_here

SENTENCE = "I really need you to call me back about the plans for the weekend."
VOICES = ["en-us", "en-us+f3", "en-gb-x-rp+f1"]


def prosody_of(path) -> dict[str, float]:
    """Mean F0 and F0 range (semitones) and loudness, measured by openSMILE (eGeMAPS)."""
    import opensmile

    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    row = smile.process_file(str(path)).iloc[0]
    return {
        "f0": row["F0semitoneFrom27.5Hz_sma3nz_amean"],
        "range": row["F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2"],
        "loudness": row["loudness_sma3_amean"],
    }


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """SENTENCE spoken in every emotion by three voices: {(emotion, voice): (path, wav)}."""
    folder = tmp_path_factory.mktemp("espeak")
    tts = EspeakEngine()
    out = {}
    for emotion in PROSODY:
        for voice in VOICES:
            path = folder / f"{emotion}_{voice}.wav"
            tts.synthesize(SENTENCE, emotion, voice, path)
            out[emotion, voice] = path, sf.read(path, dtype="float32")[0]
    return out


def test_registered_through_the_entry_point(monkeypatch):
    monkeypatch.setenv("SERCLI_LOAD_PLUGINS", "espeak")
    pl.reset()
    try:
        tts = pl.create("tts", "espeak", {"prosody": "1.5"})
    finally:
        pl.reset()
    assert isinstance(tts, EspeakEngine) and tts.max_concurrency == 1 and tts.options.prosody == 1.5


def test_every_default_voice_exists():
    with LOCK:
        for voice in DEFAULT_VOICES:
            espeak().set_voice(voice)  # raises SercliError for a voice missing from espeak-ng-data
    assert len(set(DEFAULT_VOICES)) == len(DEFAULT_VOICES) >= 8


def test_each_emotion_and_voice_is_a_16k_mono_wav_of_plausible_length(spoken):
    for (emotion, voice), (path, wav) in spoken.items():
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert 2.0 < info.duration < 7.0, (emotion, voice, info.duration)
        assert 0.02 < np.sqrt(np.mean(wav**2)) and np.abs(wav).max() <= 1.0


def test_prosody_differs_measurably_between_emotions(spoken):
    for voice in VOICES:
        length = {e: len(spoken[e, voice][1]) for e in PROSODY}
        assert length["sad"] > 1.2 * length["angry"], voice
        assert length["fear"] < length["neutral"] < length["sad"], voice
        m = {e: prosody_of(spoken[e, voice][0]) for e in ("neutral", "angry", "happy", "sad", "fear", "boredom")}
        f0 = {e: v["f0"] for e, v in m.items()}
        assert f0["sad"] + 2 < f0["neutral"] < min(f0["angry"], f0["happy"], f0["fear"]) - 2, (voice, f0)
        assert m["boredom"]["range"] < m["sad"]["range"] < m["neutral"]["range"] < m["angry"]["range"], voice
        assert m["sad"]["loudness"] < m["neutral"]["loudness"] < m["angry"]["loudness"], voice


def test_voices_sound_different(spoken):
    male, female = (prosody_of(spoken["neutral", v][0])["f0"] for v in ("en-us", "en-us+f3"))
    assert female > male + 6  # semitones
    a, b = spoken["neutral", "en-us+f3"][1], spoken["neutral", "en-gb-x-rp+f1"][1]
    n = min(len(a), len(b))
    assert len(a) != len(b) or not np.allclose(a[:n], b[:n], atol=1e-3)


def test_voice_pool_option_and_prosody_scale():
    assert EspeakEngine().voices("sad") == DEFAULT_VOICES
    tts = EspeakEngine(options=EspeakEngine.Options(voices="en-us, en-gb-x-rp+f4", prosody=0))
    assert tts.voices() == ["en-us", "en-gb-x-rp+f4"]
    assert tts.prosody("angry", "en-us") == tts.prosody("sad", "en-us")  # prosody=0: all neutral
    plain = EspeakEngine(options=EspeakEngine.Options(voice_variation=False))
    assert plain.prosody("neutral", "en-us") == plain.prosody("neutral", "en-us+f3") == PROSODY["neutral"]


def test_markup_and_quotes_are_read_as_plain_text(tmp_path):
    tts = EspeakEngine()
    # As SSML this would be ten seconds of silence; as text it is a few spoken words.
    tts.synthesize('<speak>He said "no" & <break time="10s"/> [[h@l@U]]</speak>', "neutral", "en-us", tmp_path / "m.wav")
    wav, _ = sf.read(tmp_path / "m.wav", dtype="float32")
    assert len(wav) < 9 * 16000
    assert np.mean(np.abs(wav) > 0.01) > 0.3  # mostly speech, not a long pause


def test_errors(tmp_path):
    tts = EspeakEngine()
    with pytest.raises(SercliError, match="no prosody rules for emotion 'joy'.*Known: neutral, angry"):
        tts.synthesize("Hello there.", "joy", "en-us", tmp_path / "x.wav")
    with pytest.raises(SercliError, match=r"no voice 'en-us\+f9'"):
        tts.synthesize("Hello there.", "happy", "en-us+f9", tmp_path / "x.wav")
    with pytest.raises(RecordError, match="empty"):
        tts.synthesize(" \n\x00 ", "happy", "en-us", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_concurrent_calls_are_serialised(tmp_path):
    """Threads share one espeak-ng instance: each output must be its own sentence, whole."""
    tts = EspeakEngine()
    jobs = [("Yes.", "en-us"), (SENTENCE, "en-us+f3")] * 3
    errors = []

    def work(i, text, voice):
        try:
            tts.synthesize(text, "neutral", voice, tmp_path / f"{i}.wav")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    short = [sf.info(str(tmp_path / f"{i}.wav")).duration for i in range(0, 6, 2)]
    long = [sf.info(str(tmp_path / f"{i}.wav")).duration for i in range(1, 6, 2)]
    assert max(short) < 1.2 and min(long) > 2.5
    assert max(long) - min(long) < 0.01  # no chunks from another call mixed in


def test_gen_text_then_synthesize_through_the_cli(tmp_path):
    env = {"SERCLI_LOAD_PLUGINS": "template,espeak"}
    run_here("gen-text", "-e", "angry,sad", "-n", "2", "-o", tmp_path / "t.jsonl", env=env, check=True)
    run_here(
        "synthesize", tmp_path / "t.jsonl", "-d", tmp_path / "wav", "--voices-per-text", "2",
        "-o", tmp_path / "s.jsonl", env=env, check=True,
    )
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(records) == 8 and {r["emotion"] for r in records} == {"angry", "sad"}
    for r in records:
        assert sf.info(r["audio"]).samplerate == 16000 and r["speaker"].startswith("espeak:")


def test_a_clean_run_renders_the_same_samples_with_or_without_torch_loaded():
    """The breathy variants' noise comes from espeak-ng's generator, seeded per utterance:
    two fresh processes (one that has loaded torch) render identical audio."""
    import subprocess
    import sys

    script = (
        "import hashlib, sys\n"
        "if sys.argv[1] == 'torch': import torch\n"
        "from sercli_espeak.library import LOCK, Prosody, espeak\n"
        "with LOCK:\n"
        "    print(hashlib.sha256(b''.join(espeak().synth('Not again, please.', v, Prosody()).tobytes()"
        " for v in ('en-us', 'en-us+f2', 'en-029+f3'))).hexdigest())\n"
    )
    digests = {
        mode: subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True).stdout
        for mode in ("plain", "torch")
    }
    assert digests["plain"] == digests["torch"] != ""


def test_voices_follow_the_records_language():
    from sercli_espeak.engine import language_pool
    from sercli_espeak.library import voice_languages

    installed = voice_languages()
    assert {"de", "it", "fr", "es"} <= {c.split("-")[0] for codes in installed.values() for c in codes}
    tts = EspeakEngine()
    assert tts.voices("angry") == DEFAULT_VOICES == tts.voices("angry", language="en")
    for language in ("de", "it", "fr", "es"):
        pool = tts.voices("sad", language=language)
        assert len(pool) == len(set(pool)) == len(DEFAULT_VOICES)
        for voice in pool:  # each one an installed voice of that language
            assert any(c.split("-")[0] == language for c in installed[voice.split("+")[0]]), voice
    assert language_pool("de-AT") == language_pool("de")  # no Austrian voice: the German ones
    with pytest.raises(SercliError, match=r"no voice for language 'tlh'.*\bde\b"):
        tts.voices("sad", language="tlh")
    # an explicit pool is the user's choice
    assert EspeakEngine(options=EspeakEngine.Options(voices="en-us")).voices("sad", language="de") == ["en-us"]


def test_a_german_voice_speaks_german_audio(tmp_path):
    tts = EspeakEngine()
    voice = tts.voices("neutral", language="de")[1]
    path = tmp_path / "de.wav"
    tts.synthesize("Der Zug nach München fährt um halb sieben von Gleis drei ab.", "neutral", voice, path)
    wav, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and len(wav) > rate and np.sqrt(np.mean(wav**2)) > 0.02
