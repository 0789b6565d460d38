"""synthesize and gen-text under faults: paths from data, two writers, a killed run resumed,
and cached audio made with other settings. Real processes, real signals, the real espeak-ng
engine, and the OpenAI-compatible test server for the paid engines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import run_here
from openai_server import FakeOpenAI

ESPEAK = {"SERCLI_LOAD_PLUGINS": "template,espeak"}
KEY = "sk-test-synth-faults"
LOCKED = "is being written by another sercli process"


def write_texts(path: Path, items) -> Path:
    path.write_text("".join(json.dumps({"id": i, "emotion": e, "text": t}) + "\n" for i, e, t in items))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI() as fake:
        fake.speech_rate = 16000  # no resampling: the subprocesses need not import torch
        yield fake


def start(args, server, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url, "SERCLI_QUIET": "1",
           "SERCLI_LOAD_PLUGINS": "openai"}
    env.pop("SERCLI_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "sercli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# -- 2: no field of a record names a path outside the audio folder ------------------------------

def test_ids_cannot_write_outside_the_audio_folder_and_never_collide(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    texts = write_texts(work / "t.jsonl", [
        ("../../escaped", "sad", "I never wanted this."),
        (str(tmp_path / "absolute"), "sad", "Nobody came to the party."),
        ("sub/dir", "happy", "What a lovely morning."),
        ("sub_dir", "happy", "We won the match!"),
    ])
    before = files_under(tmp_path)
    audio = work / "audio"
    proc = run_here("synthesize", texts, "-d", audio, "--voices", "en-us", "-o", work / "s.jsonl", env=ESPEAK)
    assert proc.returncode == 0, proc.stderr
    records = lines(work / "s.jsonl")
    assert len(records) == 4 and len({r["audio"] for r in records}) == 4
    for rec in records:
        assert Path(rec["audio"]).parent == audio.resolve(), rec["audio"]
    assert [r["id"] for r in records] == [f"{i}-en-us" for i in ("../../escaped", str(tmp_path / "absolute"),
                                                               "sub/dir", "sub_dir")]
    created = files_under(tmp_path) - before
    assert all(audio in p.parents or p == work / "s.jsonl" for p in created), sorted(created)


# -- 7: two writers -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["gen-text", "synthesize", "shared-audio-dir"])
def test_a_second_writer_is_refused_and_nothing_is_paid_twice(server, tmp_path, command):
    """The first run is held by the server in its first request; a second run on the same -o
    file (or the same audio folder) must stop at once, not request (and write) it all again."""
    texts = write_texts(tmp_path / "t.jsonl", [(f"t{i}", "sad", f"Line number {i}.") for i in range(3)])
    if command == "gen-text":
        first = second = ["gen-text", "-e", "angry", "-n", "3", "-b", "openai", "-o", tmp_path / "o.jsonl",
                          "-O", "batch_size=3", "-O", "max_concurrency=1"]
    else:
        first = ["synthesize", texts, "-t", "openai", "-o", tmp_path / "o.jsonl", "-d", tmp_path / "w",
                 "-O", "max_concurrency=1", "-O", "voices=coral"]
        second = first if command == "synthesize" else [*first[:5], tmp_path / "other.jsonl", *first[6:]]
    server.hold_after = 0
    p1 = start(first, server, tmp_path)
    wait_for(lambda: len(server.requests) == 1)
    p2 = start(second, server, tmp_path)
    try:
        p2.wait(timeout=20)
    except subprocess.TimeoutExpired:  # it is waiting for the server: it sent a request too
        pass
    server.hold_after = None
    server.release()
    _, err1 = p1.communicate(timeout=60)
    _, err2 = p2.communicate(timeout=60)
    assert p1.returncode == 0, err1
    what = "audio folder" if command == "shared-audio-dir" else "o.jsonl"
    assert p2.returncode == 1 and LOCKED in err2 and what in err2 and len(err2.strip().splitlines()) == 1, err2
    records = lines(tmp_path / "o.jsonl")
    assert len(records) == 3 and len({r["id"] for r in records}) == 3
    assert len(server.requests) == (1 if command == "gen-text" else 3)
    assert not lines(tmp_path / "other.jsonl")


# -- 9: a killed run, resumed, gives what an uninterrupted run gives ------------------------------

RENDER = """
import hashlib, sys
from sercli_espeak.engine import EspeakEngine
from sercli_espeak.library import LOCK, espeak
tts = EspeakEngine()
utterances = {"A": ("I am so angry with you right now.", "angry", "en-us+f2"),
              "B": ("Please leave me alone tonight.", "sad", "en-gb-x-rp"),
              "C": ("We are going to the beach tomorrow!", "happy", "en-us+f3")}
with LOCK:
    for name in sys.argv[1]:
        text, emotion, voice = utterances[name]
        samples = espeak().synth(text, voice, tts.prosody(emotion, voice))
        print(name, hashlib.sha256(samples.tobytes()).hexdigest())
"""


def test_an_utterance_does_not_depend_on_what_the_process_rendered_before():
    def render(order: str, **env) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-c", RENDER, order], capture_output=True, text=True, check=True,
                             env={**os.environ, **env})
        return dict(line.split() for line in out.stdout.splitlines())

    abc, c, ac, cc = render("ABC"), render("C"), render("AC"), render("CC")
    assert abc["C"] == c["C"] == ac["C"] == cc["C"]
    assert abc["A"] == ac["A"]
    # without a writable cache (no view of the data folder) the samples are the same
    assert render("BC", SERCLI_CACHE="/proc/no-cache-here") == {"B": abc["B"], "C": c["C"]}


def test_synthesize_killed_and_resumed_writes_the_same_files_as_an_uninterrupted_run(tmp_path):
    texts = write_texts(tmp_path / "t.jsonl", [
        (f"t{i}", ("angry", "happy", "sad", "neutral")[i % 4], f"This is sentence {i} of the test, said once.")
        for i in range(24)])
    args = ["synthesize", texts, "--voices", "en-us,en-us+f3,en-gb-x-rp+f1", "--voices-per-text", "3"]
    run_here(*args, "-d", tmp_path / "clean", "-o", tmp_path / "clean.jsonl", env=ESPEAK, check=True)
    clean = {r["id"]: Path(r["audio"]) for r in lines(tmp_path / "clean.jsonl")}
    assert len(clean) == 72

    out, audio = tmp_path / "resumed.jsonl", tmp_path / "resumed"
    env = {**os.environ, **ESPEAK, "SERCLI_QUIET": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sercli", *map(str, args), "-d", audio, "-o", out],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(out.read_text().splitlines()) >= 10 if out.exists() else False, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 10 <= len(lines(out)) < 72  # killed half way
    run_here(*args, "-d", audio, "-o", out, env=ESPEAK, check=True)

    resumed = {r["id"]: Path(r["audio"]) for r in lines(out)}
    assert resumed.keys() == clean.keys()
    for key, path in clean.items():
        assert resumed[key].name == path.name and resumed[key].read_bytes() == path.read_bytes(), key
    assert not [p.name for p in audio.iterdir() if p.name.endswith(".tmp")]


def test_temporary_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = audio / f".t0-en-us.0123456789ab.wav.{dead.pid}.140001.tmp"
    stale_fsutil = audio / f".t1-en-us.0123456789ab.wav.{dead.pid}.tmp"
    live = audio / f".t2-en-us.0123456789ab.wav.{os.getpid()}.140001.tmp"
    for path in (stale, stale_fsutil, live):
        path.write_bytes(b"RIFF half a file")
    texts = write_texts(tmp_path / "t.jsonl", [("t0", "sad", "It rained again.")])
    run_here("synthesize", texts, "-d", audio, "--voices", "en-us", "-o", tmp_path / "s.jsonl", env=ESPEAK, check=True)
    assert not stale.exists() and not stale_fsutil.exists() and live.exists()


# -- 10: cached audio is keyed by everything that made it -----------------------------------------

def test_other_engine_options_render_new_audio_and_an_output_file_never_mixes_them(tmp_path):
    texts = write_texts(tmp_path / "t.jsonl", [("t0", "angry", "Give it back to me now."),
                                               ("t1", "sad", "I miss the old house.")])
    base = ["synthesize", texts, "-d", tmp_path / "audio", "--voices", "en-us"]
    run_here(*base, "-o", tmp_path / "a.jsonl", env=ESPEAK, check=True)
    run_here(*base, "-o", tmp_path / "b.jsonl", "-O", "prosody=0", env=ESPEAK, check=True)
    run_here("synthesize", texts, "-d", tmp_path / "fresh", "--voices", "en-us", "-o", tmp_path / "f.jsonl",
            "-O", "prosody=0", env=ESPEAK, check=True)
    a, b, fresh = (lines(tmp_path / f"{x}.jsonl") for x in "abf")
    for ra, rb, rf in zip(a, b, fresh):
        assert ra["id"] == rb["id"] and ra["audio"] != rb["audio"]
        assert Path(rb["audio"]).read_bytes() == Path(rf["audio"]).read_bytes()  # not the old audio
        assert Path(ra["audio"]).read_bytes() != Path(rb["audio"]).read_bytes()
        assert rb["provenance"]["synthesize"]["options"]["prosody"] == 0

    before = (tmp_path / "a.jsonl").read_text()
    proc = run_here(*base, "-o", tmp_path / "a.jsonl", "-O", "prosody=0", env=ESPEAK)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1 and "already holds t0-en-us" in err[0], proc.stderr
    assert "other engine or engine options" in err[0] and "another -o file" in err[0]
    assert (tmp_path / "a.jsonl").read_text() == before

    changed = write_texts(tmp_path / "t2.jsonl", [("t0", "angry", "Give it back to me right now.")])
    proc = run_here("synthesize", changed, "-d", tmp_path / "audio", "--voices", "en-us", "-o", tmp_path / "a.jsonl",
                   env=ESPEAK)
    assert proc.returncode == 1 and "t0-en-us (other text)" in proc.stderr
    # the same settings resume as before: nothing to do, nothing written
    run_here(*base, "-o", tmp_path / "a.jsonl", env=ESPEAK, check=True)
    assert (tmp_path / "a.jsonl").read_text() == before


def test_paid_audio_is_requested_once_per_inputs_under_any_id_or_connection_setting(server, tmp_path):
    items = [("a0", "sad", "The letter never came."), ("a1", "happy", "We got the flat!")]
    first = write_texts(tmp_path / "a.jsonl", items)
    again = write_texts(tmp_path / "b.jsonl", [("b" + i[1:], e, t) for i, e, t in items])

    def synth(texts, out, *options):
        proc = start(["synthesize", texts, "-t", "openai", "-d", tmp_path / "w", "-o", tmp_path / out,
                      "-O", "voices=coral", *options], server, tmp_path)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return lines(tmp_path / out)

    one = synth(first, "1.jsonl")
    assert len(server.calls("/audio/speech")) == 2
    two = synth(again, "2.jsonl")  # other ids, same texts: reused
    three = synth(first, "3.jsonl", "-O", "max_concurrency=2", "-O", "timeout=30", "-O", "max_retries=1")
    assert len(server.calls("/audio/speech")) == 2
    audio = [{r["text"]: r["audio"] for r in run} for run in (one, two, three)]
    assert audio[0] == audio[1] == audio[2] and len(set(audio[0].values())) == 2
    assert sorted(r["id"] for r in two) == ["b0-coral", "b1-coral"]
    synth(first, "4.jsonl", "-O", "speed=1.5")  # changes the audio: new requests
    assert len(server.calls("/audio/speech")) == 4
    assert all(sf.info(r["audio"]).samplerate == 16000 for r in one)


def test_gen_text_does_not_count_sentences_made_with_other_settings(tmp_path):
    out = tmp_path / "t.jsonl"
    run_here("gen-text", "-e", "angry", "-n", "2", "-o", out, env=ESPEAK, check=True)
    before = out.read_text()
    for other in (["--seed", "1"], ["-O", "min_words=8"]):
        proc = run_here("gen-text", "-e", "angry", "-n", "4", "-o", out, *other, env=ESPEAK)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(err) == 1 and "holds 2 sentences made with other settings" in err[0]
        assert out.read_text() == before
    run_here("gen-text", "-e", "angry", "-n", "4", "-o", out, env=ESPEAK, check=True)
    records = lines(out)
    assert len(records) == 4 and all(r["provenance"]["gen_text"]["seed"] == 0 for r in records)


def test_resuming_with_another_seed_or_voice_count_is_refused_not_mixed(tmp_path):
    """--seed, --voices and --voices-per-text choose each sentence's voices: resuming an -o file
    with others would append other voices' records, a file that no single run makes."""
    texts = write_texts(tmp_path / "t.jsonl", [("a", "sad", "I never wanted this."),
                                               ("b", "happy", "What a lovely morning.")])
    out, audio = tmp_path / "s.jsonl", tmp_path / "audio"
    base = ("synthesize", texts, "-d", audio, "-o", out, "-O", "voices=en-us,en-gb-x-rp,en-us+f3")
    assert run_here(*base, env=ESPEAK).returncode == 0
    first = out.read_bytes()
    assert run_here(*base, env=ESPEAK).returncode == 0 and out.read_bytes() == first  # same run: nothing to do
    for other in (("--seed", "1"), ("--voices", "en-us+m3")):
        proc = run_here(*base, *other, env=ESPEAK)
        assert proc.returncode == 1 and "other --seed, --voices or --voices-per-text" in proc.stderr, (other, proc.stderr)
        assert out.read_bytes() == first
    # more voices per text with the same seed keeps the voices already chosen: a resume
    assert run_here(*base, "--voices-per-text", "2", env=ESPEAK).returncode == 0
    fresh = tmp_path / "fresh.jsonl"
    assert run_here(*base[:-4], "-o", fresh, *base[-2:], "--voices-per-text", "2", env=ESPEAK).returncode == 0
    assert sorted(r["id"] for r in lines(out)) == sorted(r["id"] for r in lines(fresh))
    proc = run_here(*base, env=ESPEAK)  # and back to one is refused
    assert proc.returncode == 1 and "other --seed, --voices or --voices-per-text" in proc.stderr, proc.stderr


def test_an_audio_folder_that_is_a_file_is_named(tmp_path):
    texts = write_texts(tmp_path / "t.jsonl", [("a", "sad", "I never wanted this.")])
    (tmp_path / "afile").write_text("not a folder")
    for audio in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        proc = run_here("synthesize", texts, "-d", audio, "-o", tmp_path / "s.jsonl", env=ESPEAK)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
            f"Error: --audio-dir {audio}: {tmp_path / 'afile'} is a file, not a folder"], proc.stderr
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_records_that_say_the_same_thing_share_one_existing_file(tmp_path):
    """Two ids, one text, emotion and voice: rendered once, and both records name that file
    (the second used to name a file that was never written)."""
    texts = write_texts(tmp_path / "t.jsonl", [("one", "sad", "Same words here."), ("two", "sad", "Same words here.")])
    out, audio = tmp_path / "s.jsonl", tmp_path / "audio"
    assert run_here("synthesize", texts, "-d", audio, "--voices", "en-us", "-o", out, env=ESPEAK).returncode == 0
    records = lines(out)
    assert [r["id"] for r in records] == ["one-en-us", "two-en-us"]
    assert all(Path(r["audio"]).is_file() for r in records)
    assert len({r["audio"] for r in records}) == 1 and len(list(audio.glob("*.wav"))) == 1
