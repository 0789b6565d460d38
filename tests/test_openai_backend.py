"""The ``openai`` LLM backend and TTS engine, driven through the real ``openai`` client against a
scripted OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py)."""

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

from openai_server import FakeOpenAI
from sercli.core import plugins as pl
from sercli.core.errors import RecordError, SercliError

KEY = "sk-test-DO-NOT-LEAK-4242"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeOpenAI() as fake:
        yield fake


def llm(server, **options):
    opts = {"base_url": server.url, "backoff": "0.01", "timeout": "2", **{k: str(v) for k, v in options.items()}}
    return pl.create("llm", "openai", opts)


def tts(server, **options):
    opts = {"base_url": server.url, "backoff": "0.01", "timeout": "2", **{k: str(v) for k, v in options.items()}}
    return pl.create("tts", "openai", opts)


def prompts_of(server) -> list[str]:
    return [r["body"]["messages"][-1]["content"] for r in server.calls("/chat/completions")]


# -- LLM: prompts, parsing, dedup ---------------------------------------------------------------

def test_generation_prompts_are_structured_varied_and_carry_the_length_range(server):
    backend = llm(server, batch_size=4, min_words=6, max_words=14)
    out = list(backend.generate("angry", 12, seed=3, exclude=set()))
    assert len(out) == len(set(out)) == 12
    bodies = [r["body"] for r in server.calls("/chat/completions")]
    assert len(bodies) == 3  # exactly ceil(12 / 4): nothing asked twice
    assert all(b["response_format"]["type"] == "json_schema" for b in bodies)
    users = prompts_of(server)
    assert all('The emotion is "angry"' in u and "between 6 and 14 words" in u for u in users)
    assert len(set(users)) == 3  # each batch gets its own topic and speakers
    assert "Never use the word" in users[0]
    # the same seed gives the same prompts (reproducible runs)
    again = FakeOpenAI().start()
    try:
        list(llm(again, batch_size=4, min_words=6, max_words=14).generate("angry", 12, seed=3, exclude=set()))
        assert sorted(prompts_of(again)) == sorted(users)
    finally:
        again.stop()


def test_json_object_and_prompt_only_formats_parse_loose_replies(server):
    server.script.extend([
        ("sentences", ["1. Who left the door of the freezer open all night again?"]),
    ])
    backend = llm(server, response_format="json_object", batch_size=1)
    assert list(backend.generate("angry", 1, seed=0, exclude=set())) == [
        "Who left the door of the freezer open all night again?"]
    assert server.requests[0]["body"]["response_format"] == {"type": "json_object"}
    backend = llm(server, response_format="none", batch_size=1)
    list(backend.generate("angry", 1, seed=0, exclude=set()))
    assert "response_format" not in server.requests[-1]["body"]


def test_parse_sentences_is_robust():
    from sercli_openai.prompts import Malformed, parse_sentences

    assert parse_sentences('```json\n{"sentences": ["A b c.", " \'D e f.\' "]}\n```') == ["A b c.", "D e f."]
    assert parse_sentences('Sure! Here they are: ["One two three."] Enjoy.') == ["One two three."]
    assert parse_sentences('{"items": [{"text": "Four five six."}]}') == ["Four five six."]
    for bad in ("", "no json here", '{"sentences": ["cut off', '{"sentences": []}', '{"a": 1}'):
        with pytest.raises(Malformed):
            parse_sentences(bad)


def test_excluded_duplicate_overlong_and_naming_sentences_are_never_returned(server):
    old = "We waited two hours and the plumber never even called back!"
    server.script.append(("sentences", [
        old.upper().replace("!", "."),                       # in `exclude`, other case/punctuation
        "Why is the printer jammed again right before my deadline?",
        "why is the printer jammed again, right before my deadline",  # duplicate within the run
        "No.",                                               # too short
        "I am so angry at the landlord for ignoring the leak again.",  # names the emotion
    ]))
    backend = llm(server, batch_size=5)
    out = list(backend.generate("angry", 5, seed=0, exclude={" ".join(old.lower().split())}))
    assert len(out) == 5
    assert out[0] == "Why is the printer jammed again right before my deadline?"
    keys = [" ".join(s.lower().replace(",", "").replace("?", "").split()) for s in out]
    assert len(set(keys)) == 5 and not any("plumber" in k for k in keys)
    usage = backend.usage()
    assert usage["dropped_duplicate"] == 2 and usage["dropped_length"] == 1 and usage["dropped_naming"] == 1
    assert len(server.calls("/chat/completions")) == 2  # one more request for the 4 dropped
    assert "Do not repeat" in prompts_of(server)[0] and "plumber" in prompts_of(server)[0]


def test_self_check_drops_and_counts_incongruent_sentences(server):
    server.labeler = lambda sentence, emotion: "happy" if "number 2 " in sentence else emotion
    backend = llm(server, batch_size=3, self_check="true")
    out = list(backend.generate("sad", 3, seed=0, exclude=set()))
    assert len(out) == 3 and not any("number 2 " in s for s in out)
    assert backend.usage()["dropped_self_check"] == 1
    label_requests = [p for p in prompts_of(server) if "Label each sentence" in p]
    assert len(label_requests) == 2 and "neutral" in label_requests[0]
    assert backend.estimate("sad", 3)["requests"] == 2


# -- LLM: retries, failures, errors -------------------------------------------------------------

def test_every_sentence_once_despite_malformed_429_500_and_timeouts(server):
    server.script.extend([
        "malformed", ("status", 429, {"Retry-After": "0.2"}), ("status", 500, {}), ("status", 503, {}),
        ("sleep", 1.5),
    ])
    backend = llm(server, batch_size=4, max_concurrency=2, timeout=0.5)
    out = list(backend.generate("happy", 14, seed=1, exclude=set()))
    assert len(out) == len(set(out)) == 14
    usage = backend.usage()
    assert usage["malformed"] == 1 and usage["failures"] == 0
    assert usage["retries"] == 5  # malformed, 429, 500, 503, timeout
    assert usage["requests"] == 4 + 5 == len(server.calls("/chat/completions"))
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_retry_after_is_honoured(server):
    server.script.append(("status", 429, {"Retry-After": "1"}))
    backend = llm(server, batch_size=2, max_concurrency=1)
    assert len(list(backend.generate("sad", 2, seed=0, exclude=set()))) == 2
    first, second = server.calls("/chat/completions")
    assert second["time"] - first["time"] >= 1.0  # backoff alone would wait ~0.01 s


def test_a_batch_that_fails_after_retries_is_replaced_and_counted(server):
    server.script.extend([("status", 500, {})] * 2)
    backend = llm(server, batch_size=2, max_concurrency=1, max_retries=1)
    out = list(backend.generate("sad", 4, seed=0, exclude=set()))
    assert len(set(out)) == 4
    assert backend.usage()["failures"] == 1


def test_persistent_failures_end_in_a_record_error_after_what_could_be_made(server):
    server.script.extend([("status", 502, {})] * 50)
    backend = llm(server, batch_size=2, max_concurrency=1, max_retries=1, max_requests=2)
    got = []
    with pytest.raises(RecordError, match=r"2 request\(s\) failed for 'sad', 3 sentences missing"):
        for text in backend.generate("sad", 3, seed=0, exclude=set()):
            got.append(text)
    assert got == [] and len(server.calls("/chat/completions")) == 4  # 2 requests x 2 attempts
    assert KEY not in str(backend.usage())


@pytest.mark.parametrize(
    "action, message",
    [
        (("status", 401, {}), "OpenAI authentication failed (HTTP 401)"),
        ("quota", "OpenAI quota exceeded"),
        (("status", 404, {}), "check the model name 'gpt-4o-mini'"),
        (("status", 400, {}), "HTTP 400"),
    ],
)
def test_fatal_errors_are_one_clear_line_without_the_key(server, action, message):
    server.script.append(action)
    backend = llm(server, batch_size=2, max_concurrency=1)
    with pytest.raises(SercliError) as err:
        list(backend.generate("sad", 4, seed=0, exclude=set()))
    assert message in str(err.value) and KEY not in str(err.value) and "\n" not in str(err.value)
    assert not isinstance(err.value, RecordError)
    assert len(server.calls("/chat/completions")) == 1  # no retry of what cannot succeed


def test_unreachable_server_and_missing_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = pl.create("llm", "openai", {"base_url": "http://127.0.0.1:9/v1", "max_retries": "1",
                                          "backoff": "0.01"})
    with pytest.raises(SercliError, match=r"Cannot connect to http://127.0.0.1:9/v1"):
        list(backend.generate("sad", 1, seed=0, exclude=set()))
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(SercliError, match="OPENAI_API_KEY is not set"):
        list(pl.create("llm", "openai").generate("sad", 1, seed=0, exclude=set()))


def test_estimate_and_provenance_hold_no_secret(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = pl.create("llm", "openai", {"batch_size": "10", "base_url": "https://user:pw@example.org/v1?k=s"})
    est = backend.estimate("angry", 25)
    assert est["requests"] == 3 and est["characters"] > 3 * 500
    prov = json.dumps(backend.provenance())
    assert KEY not in prov and "pw" not in prov and "https://example.org/v1" in prov
    with pytest.raises(SercliError, match="min_words"):
        pl.create("llm", "openai", {"min_words": "9", "max_words": "3"})


# -- TTS ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["wav", "pcm"])
def test_speech_is_16k_mono_with_a_tone_instruction(server, tmp_path, fmt):
    engine = tts(server, response_format=fmt)
    assert set(engine.voices("angry")) == {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
                                           "nova", "sage", "shimmer", "verse"}
    out = tmp_path / "a.wav"
    engine.synthesize("Who moved my keys again?", "angry", "onyx", out)
    info = sf.info(str(out))
    assert (info.samplerate, info.channels) == (16000, 1)
    assert abs(info.duration - 0.25) < 0.01
    body = server.calls("/audio/speech")[0]["body"]
    assert body["model"] == "gpt-4o-mini-tts" and body["voice"] == "onyx" and body["response_format"] == fmt
    assert "angrily" in body["instructions"]
    assert engine.usage() == {"requests": 1, "characters": 24, "retries": 0, "failures": 0}


def test_speech_failing_after_retries_is_a_record_error(server, tmp_path):
    server.speech_script.extend([("status", 503, {})] * 3)
    engine = tts(server, max_retries=2)
    with pytest.raises(RecordError, match="gave up after 3 attempts"):
        engine.synthesize("Hello there.", "sad", "nova", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    server.speech_script.append(("status", 401, {}))
    with pytest.raises(SercliError, match="authentication failed"):
        engine.synthesize("Hello there.", "sad", "nova", tmp_path / "x.wav")


def test_models_that_ignore_instructions_are_refused():
    with pytest.raises(SercliError, match="ignores tone instructions"):
        pl.create("tts", "openai", {"model": "tts-1"})


# -- the commands: killed half way, resumed, failures and fatal errors ---------------------------

def _start(args, server, out_dir: Path, quiet: bool = True):
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url, "SERCLI_QUIET": "1" if quiet else ""}
    env.pop("SERCLI_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "sercli", *map(str, args)], cwd=out_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, seconds=30.0):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_gen_text_killed_half_way_resumes_without_paying_twice(server, tmp_path):
    out = tmp_path / "text.jsonl"
    args = ["gen-text", "-e", "angry,sad", "-n", "5", "-b", "openai", "-o", out,
            "-O", "batch_size=3", "-O", "max_concurrency=1"]
    server.hold_after = 1  # angry's first batch arrives, then the server goes quiet
    proc = _start(args, server, tmp_path)
    _wait_for(lambda: len(_lines(out)) == 3 and len(server.requests) == 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    server.hold_after = None
    server.release()
    before = len(server.requests)

    proc = _start(args, server, tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = _lines(out)
    assert sorted(r["emotion"] for r in records) == ["angry"] * 5 + ["sad"] * 5
    assert len({r["id"] for r in records}) == len({r["text"] for r in records}) == 10
    rerun = [r["body"]["messages"][-1]["content"] for r in server.requests[before:]]
    # only the missing work is asked for: 2 angry sentences, then 3 + 2 sad ones
    assert [(p.split(" ")[1], 'emotion is "sad"' in p) for p in rerun] == [("2", False), ("3", True), ("2", True)]
    assert KEY not in out.read_text()


def test_synthesize_killed_half_way_resumes_without_paying_twice(server, tmp_path):
    texts = tmp_path / "text.jsonl"
    texts.write_text("".join(
        json.dumps({"id": f"t{i}", "emotion": e, "text": f"Sentence number {i} & <more> \"quoted\"."}) + "\n"
        for i, e in enumerate(["angry", "happy", "sad", "neutral", "angry", "sad"])))
    out = tmp_path / "speech.jsonl"
    args = ["synthesize", texts, "-t", "openai", "-o", out, "-d", tmp_path / "wav",
            "-O", "max_concurrency=1", "-O", "voices=coral"]
    server.hold_after = 2
    server.speech_rate = 16000  # no resampling, so no torch import in the subprocesses (speed)
    proc = _start(args, server, tmp_path)
    _wait_for(lambda: len(_lines(out)) == 2 and len(server.requests) == 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    server.hold_after = None
    server.release()
    first = {r["text"] for r in _lines(out)}
    before = len(server.requests)

    proc = _start(args, server, tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = _lines(out)
    assert sorted(r["id"] for r in records) == [f"t{i}-coral" for i in range(6)]
    asked = [r["body"]["input"] for r in server.requests[before:]]
    assert len(asked) == 4 and not set(asked) & first  # nothing done before is paid for again
    for rec in records:
        info = sf.info(rec["audio"])
        assert (info.samplerate, info.channels) == (16000, 1) and rec["speaker"] == "openai:coral"
    assert KEY not in out.read_text()


def test_dry_run_costs_nothing_and_failures_exit_non_zero(server, tmp_path):
    out = tmp_path / "text.jsonl"
    base = ["gen-text", "-e", "angry,sad", "-n", "4", "-b", "openai", "-o", out, "-O", "batch_size=2"]
    proc = _start([*base, "--dry-run"], server, tmp_path, quiet=False)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "4 requests" in err and not server.requests

    # angry's requests all fail (max_retries=0): reported, sad still made, exit status 1
    server.script.extend([("status", 500, {})] * 5)
    proc = _start([*base, "-O", "max_retries=0", "-O", "max_requests=5", "-O", "max_concurrency=1"],
                  server, tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "5 request(s) failed for 'angry'" in err and "angry short by 4" in err and KEY not in err
    assert [r["emotion"] for r in _lines(out)] == ["sad"] * 4


def test_a_rejected_key_stops_synthesize_before_more_requests(server, tmp_path):
    texts = tmp_path / "text.jsonl"
    texts.write_text("".join(json.dumps({"id": f"t{i}", "emotion": "sad", "text": f"Line {i}."}) + "\n"
                             for i in range(6)))
    server.speech_script.extend([("status", 401, {})] * 6)
    proc = _start(["synthesize", texts, "-t", "openai", "-o", tmp_path / "o.jsonl", "-d", tmp_path / "w",
                   "-O", "max_concurrency=1"], server, tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        f"Error: OpenAI authentication failed (HTTP 401) at {server.url}: OPENAI_API_KEY was rejected"]
    assert len(server.requests) == 1  # the pending utterances were cancelled, not sent


# -- live (only with a real key) ----------------------------------------------------------------

live = pytest.mark.skipif(
    not os.environ.get("OPENAI_API_KEY") or bool(os.environ.get("OPENAI_BASE_URL")),
    reason="set OPENAI_API_KEY (and no OPENAI_BASE_URL) to run against api.openai.com",
)


@live
def test_live_openai_text_and_speech(tmp_path):
    backend = pl.create("llm", "openai", {"batch_size": "3", "self_check": "true"})
    out = list(backend.generate("angry", 3, seed=0, exclude=set()))
    assert 1 <= len(out) <= 3 and all(5 <= len(s.split()) <= 20 for s in out)
    engine = pl.create("tts", "openai")
    engine.synthesize(out[0], "angry", "onyx", tmp_path / "live.wav")
    info = sf.info(str(tmp_path / "live.wav"))
    assert info.samplerate == 16000 and info.duration > 0.5
