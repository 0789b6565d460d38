"""`predict --segments`: voice-activity detectors (plugins/sercli_vad) over a long recording made
by joining espeak-ng clips with quiet noise between them; a small fbank run trained here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import run_here
from sercli.core.errors import SercliError

SR = 16000
EMOTIONS = ("angry", "happy", "sad")
TRAIN_VOICES = ("en-us", "en-us+f3", "en-gb-x-rp+f1")
TRAIN_TEXT = ("I told you to close the door.", "The train leaves at nine tonight.", "We painted the fence green.")
# the clips of the long recording: other sentences, another voice, two per emotion
CLIPS = [("angry", "Give me the keys right now."), ("sad", "Nobody came to the party at all."),
         ("happy", "What a lovely sunny morning it is."), ("sad", "I lost the letter you sent me."),
         ("angry", "Stop talking and listen to me."), ("happy", "We won the match again today.")]
FAST = ["--epochs", "25", "--patience", "25", "--lr", "0.03"]  # a linear head, confident on these clips


def silero_missing() -> str | None:
    from sercli_vad.silero import SileroVAD

    return SileroVAD.usable()


def quiet(seconds: float, rng) -> np.ndarray:
    return (0.003 * rng.standard_normal(int(seconds * SR))).astype(np.float32)  # about -50 dBFS


@pytest.fixture(scope="module")
def made(tmp_path_factory, one_torch_thread):
    """(run folder, the long recording, the clips' manifest, the clips' (start, end) in it)."""
    from sercli_espeak.engine import EspeakEngine

    root = tmp_path_factory.mktemp("segments")
    tts = EspeakEngine()
    train = []
    for voice in TRAIN_VOICES:
        for emotion in EMOTIONS:
            for k, text in enumerate(TRAIN_TEXT):
                path = root / "train" / f"{voice}-{emotion}-{k}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                tts.synthesize(text, emotion, voice, path)
                train.append({"id": path.stem, "audio": str(path), "emotion": emotion, "speaker": voice})
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    run_here("extract", root / "train.jsonl", "--backbone", "fbank", "-O", "n_mels=24", "--pool", "none",
             "--workers", "0", "--store", root / "store", "-o", root / "feats.jsonl", check=True)
    run_here("train", root / "feats.jsonl", "--out", root / "run", "--val-speakers", TRAIN_VOICES[2], *FAST,
             check=True)
    rng = np.random.default_rng(0)
    parts, joins, clips, at = [], [], [], 0
    for i, (emotion, text) in enumerate(CLIPS):
        path = root / "clips" / f"clip{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        tts.synthesize(text, emotion, "en-us+m3", path)
        wav = sf.read(str(path), dtype="float32")[0]
        gap = quiet(0.8 + 0.4 * rng.random(), rng)
        parts += [gap, wav]
        joins.append(((at + len(gap)) / SR, (at + len(gap) + len(wav)) / SR))
        at += len(gap) + len(wav)
        clips.append({"id": f"clip{i}", "audio": str(path), "speaker": "recording"})
    parts.append(quiet(1.0, rng))
    sf.write(str(root / "long.wav"), np.concatenate(parts), SR)
    (root / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clips))
    return root / "run", root / "long.wav", root / "clips.jsonl", joins


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_segments_land_on_the_joins_and_match_the_clips_predictions(made, vad, tmp_path):
    if vad == "silero" and silero_missing():
        pytest.skip(silero_missing())
    run, long_wav, clips, joins = made
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["norm"] == "speaker"  # the default run: the recording is one speaker
    alone = records(run_here("predict", run, clips, check=True).stdout)
    png = tmp_path / "figs" / "timeline.png"
    proc = run_here("predict", run, long_wav, "--segments", "--vad", vad, "--plot", png, check=True)
    segments = records(proc.stdout)
    assert len(segments) == len(joins), segments
    for seg, (start, end) in zip(segments, joins):
        assert abs(seg["start"] - start) < 0.3 and abs(seg["end"] - end) < 0.3, (seg, start, end)
        assert seg["file"] == str(long_wav) and set(seg["probabilities"]) == set(config["labels"])
    assert [s["predicted"] for s in segments] == [a["predicted"] for a in alone]
    assert len(set(a["predicted"] for a in alone)) > 1  # the clips are told apart: the check means something
    assert "one speaker" in proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_default_vad_is_said_and_falls_back_to_energy(made, monkeypatch):
    from sercli_vad.silero import SileroVAD

    run, long_wav, _, joins = made
    monkeypatch.setattr(SileroVAD, "usable", classmethod(lambda cls: "silero-vad is not installed: pip install x"))
    proc = run_here("predict", run, long_wav, "--segments", "-O", "threshold_db=10", check=True)
    assert "--vad: energy" in proc.stderr and "not silero: silero-vad is not installed" in proc.stderr
    assert len(records(proc.stdout)) == len(joins)


def test_long_speech_is_cut_for_the_encoder(made):
    run, long_wav, _, joins = made
    proc = run_here("predict", run, long_wav, "--segments", "--vad", "energy", "--max-segment", "0.5", "--csv",
                    check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("id,file,segment,start,end,predicted,p_")
    rows = [line.split(",") for line in lines[1:]]
    spans = [(float(r[3]), float(r[4])) for r in rows]
    assert len(spans) > 2 * len(joins) and all(0 < b - a <= 0.5 + 1e-3 for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))


def test_no_speech_unknown_vad_and_bad_plot_are_one_line(made, tmp_path):
    run, long_wav, _, _ = made
    (tmp_path / "figure.png").mkdir()
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), quiet(3.0, np.random.default_rng(1)), SR)
    cases = [
        ((silent, "--segments", "--vad", "energy"), "no speech found"),
        ((long_wav, "--segments", "--vad", "nope"), "Unknown voice-activity detector 'nope'"),
        ((long_wav, "--segments", "--plot", tmp_path / "timeline.txt"), "--plot"),
        ((long_wav, "--segments", "--plot", tmp_path / "figure.png"), "is a folder"),
        ((long_wav, "--vad", "energy"), "go with --segments"),
        ((long_wav, "--segments", "--vad", "energy", "-O", "frame_ms=1"), "frame_ms"),
    ]
    for args, said in cases:
        proc = run_here("predict", run, *args)
        assert proc.returncode != 0 and proc.stdout == "", args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0] and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_blocks_cover_the_file_at_the_target_rate(tmp_path):
    """44.1 kHz read block by block at 16 kHz: the length the header promises, the samples of
    the whole file resampled at once (apart from the resampling filter at the block edges)."""
    from sercli.core.audio import audio_length, blocks, load_audio

    t = np.arange(int(7.3 * 44100)) / 44100
    path = tmp_path / "a.wav"
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100)
    parts = list(blocks(str(path), SR, seconds=2.0))
    joined = np.concatenate(parts)
    whole = load_audio(path, SR)
    assert len(parts) == 4 and len(joined) == audio_length(str(path), SR) == len(whole)
    inner = np.ones(len(whole), bool)
    for k in np.cumsum([len(p) for p in parts])[:-1]:
        inner[k - 40 : k + 40] = False
    assert np.abs(joined - whole)[inner].max() < 1e-3


def test_streaming_silero_gives_the_package_probabilities(made):
    if silero_missing():
        pytest.skip(silero_missing())
    from silero_vad.sequence_vad import SileroVADSequence

    from sercli.core.audio import blocks
    from sercli_vad.silero import SileroVAD, model_path

    _, long_wav, _, _ = made
    vad = SileroVAD()
    vad.load()
    mine = np.concatenate(list(vad.probabilities(blocks(str(long_wav), SR, seconds=1.3))))
    whole = SileroVADSequence(str(model_path())).audio_forward(sf.read(str(long_wav), dtype="float32")[0])
    assert len(mine) == len(whole) and np.abs(mine - whole).max() < 1e-5


def test_spans_that_make_no_sense_end_with_the_plugin_named(tmp_path):
    from sercli.base import VAD
    from sercli.core.speech import speech_spans

    class Backwards(VAD):
        name = "backwards"

        def speech(self, blocks):
            for _ in blocks:
                pass
            yield 16000, 32000
            yield 8000, 9000

    path = tmp_path / "a.wav"
    sf.write(str(path), np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(SercliError, match=r"'backwards'.*\(8000, 9000\).*ended at 32000"):
        speech_spans(str(path), Backwards(), 20.0)
