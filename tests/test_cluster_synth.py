"""`sercli synthesize --cluster ray` on a local Ray cluster of two CPU workers: the same records
and byte-identical audio as a local run, a worker killed mid-job, and a paid engine (the
OpenAI-compatible test server) that is never asked twice for audio it already returned.

One Ray runtime serves the test run (conftest's ``local_ray``; the `ray` plugin reuses an
initialised Ray and leaves it running). The command runs in this process, in a thread, so the test can kill a
worker while it works. Workers are found as the processes Ray titles ``ray::_Host`` (the
plugin's actor class): `ray.util.state.list_actors` would need the dashboard, which this
module does not start, to keep the cluster cheap.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
sf = pytest.importorskip("soundfile")

from typer.testing import CliRunner  # noqa: E402

from conftest import RAY_TEST_ENV  # noqa: E402
from openai_server import FakeOpenAI  # noqa: E402
from sercli.cli import app  # noqa: E402
from sercli.core.errors import SercliError  # noqa: E402

# the Ray modules run on one pytest-xdist worker (--dist loadgroup), on one local cluster (conftest's local_ray)
pytestmark = pytest.mark.xdist_group("ray")

KEY = RAY_TEST_ENV["OPENAI_API_KEY"]  # what the cluster's workers have in their environment
EMOTIONS = ("happy", "sad", "angry", "neutral")


@pytest.fixture(scope="module", autouse=True)
def cluster(local_ray):
    """The test run's local Ray cluster (tests/conftest.py)."""
    return local_ray


def write_texts(path: Path, n: int, stem: str = "s") -> Path:
    path.write_text("".join(
        json.dumps({"id": f"{stem}{i:03d}", "emotion": EMOTIONS[i % 4],
                    "text": f"Sentence {i} of the {stem} set is about the weather."}) + "\n"
        for i in range(n)))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


class Run(threading.Thread):
    """`sercli ARGS` in this process, in a thread; ``result`` when it ends."""

    def __init__(self, *args):
        super().__init__(daemon=True)
        self.args, self.result = [str(a) for a in args], None

    def run(self):
        self.result = CliRunner().invoke(app, self.args)

    def finish(self, seconds: float = 120):
        self.join(seconds)
        assert not self.is_alive(), "the run did not end"
        return self.result


def invoke(*args):
    run = Run(*args)
    run.start()
    return run.finish()


def ok(result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output


def workers() -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and cmd[0].startswith("ray::_Host"):
            out.append(proc)
    return out


def waiting_on(port: int) -> list[psutil.Process]:
    """The plugin's Ray workers connected to the test server on ``port``."""
    out = []
    for proc in workers():
        try:
            if any(c.raddr and c.raddr.port == port for c in proc.net_connections("tcp")):
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def kill_workers(port: int | None = None, most: int = 1) -> list[int]:
    """SIGKILL up to ``most`` busy Ray workers of the plugin: titled ray::_Host.run (running a
    shard), or with ``port``, connected to the test server on that port (waiting on a request)."""
    if port is not None:
        busy = waiting_on(port)
    else:
        busy = [p for p in workers() if p.info["cmdline"][0].startswith("ray::_Host.run")]
    assert busy, "no busy worker to kill"
    for proc in busy[:most]:
        os.kill(proc.pid, signal.SIGKILL)
    for proc in busy[:most]:
        try:
            proc.wait(10)
        except psutil.NoSuchProcess:
            pass
    return [proc.pid for proc in busy[:most]]


def wait_for(condition, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def settled(value, quiet: float = 1.0, seconds: float = 30.0) -> None:
    """Wait until ``value()`` has not changed for ``quiet`` seconds."""
    end, last, since = time.monotonic() + seconds, value(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)
        now = value()
        if now != last:
            last, since = now, time.monotonic()


def assert_clean(audio: Path, records: list[dict]) -> None:
    """Every record's audio is a whole WAV; no temporary file is left in the folder."""
    for rec in records:
        info = sf.info(rec["audio"])
        assert info.samplerate == 16000 and info.frames > 0
        assert sf.read(rec["audio"])[0].shape[0] == info.frames
    leftovers = [p.name for p in audio.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


# -- espeak: the same as a local run, and a killed worker -------------------------------------

N_OFFLINE = 60


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The reference: a local run (no cluster) of the module's texts."""
    work = tmp_path_factory.mktemp("local")
    texts = write_texts(work / "t.jsonl", N_OFFLINE)
    ok(invoke("synthesize", texts, "-d", work / "audio", "-o", work / "out.jsonl"))
    return texts, {r["id"]: r for r in lines(work / "out.jsonl")}


def same_as_local(records: list[dict], reference: dict[str, dict]) -> None:
    assert sorted(r["id"] for r in records) == sorted(reference)  # every record exactly once
    for rec in records:
        ref = reference[rec["id"]]
        assert Path(rec["audio"]).name == Path(ref["audio"]).name
        assert {k: v for k, v in rec.items() if k != "audio"} == {k: v for k, v in ref.items() if k != "audio"}
        assert Path(rec["audio"]).read_bytes() == Path(ref["audio"]).read_bytes()


def test_espeak_on_two_workers_matches_a_local_run(local, tmp_path):
    texts, reference = local
    result = invoke("synthesize", texts, "-d", tmp_path / "audio", "-o", tmp_path / "out.jsonl",
                    "--cluster", "ray", "--jobs", "2")
    ok(result)
    records = lines(tmp_path / "out.jsonl")
    same_as_local(records, reference)
    assert_clean(tmp_path / "audio", records)
    assert re.search(rf"Cluster: {N_OFFLINE} utterances in \d+ shards on 2 workers", result.stderr), result.stderr


def test_a_worker_killed_mid_job_still_gives_every_record_once(local, tmp_path):
    """SIGKILL one of the two workers once the first records are in: Ray restarts it and runs
    its shards again; the files it had written are skipped, the one it was writing (a temporary
    file, never renamed) is made again and its leftover removed."""
    texts, reference = local
    out = tmp_path / "out.jsonl"
    run = Run("synthesize", texts, "-d", tmp_path / "audio", "-o", out, "--cluster", "ray", "--jobs", "2")
    run.start()
    wait_for(lambda: len(lines(out)) >= 4)
    [killed] = kill_workers()
    at_kill = len(lines(out))
    ok(run.finish())
    assert at_kill < N_OFFLINE, "the run had ended before the kill: nothing was tested"
    assert not psutil.pid_exists(killed)
    records = lines(out)
    same_as_local(records, reference)
    assert_clean(tmp_path / "audio", records)


# -- a paid engine: no request repeated --------------------------------------------------------

N_PAID = 32
CONCURRENCY = 2  # requests in flight per worker (-O max_concurrency)


class CountingServer(FakeOpenAI):
    """The test server, also noting which texts it has answered with audio."""

    def __init__(self):
        super().__init__()
        self.answered: list[str] = []

    def _speech(self, h, body):
        super()._speech(h, body)
        with self._lock:
            self.answered.append(body["input"])

    def asked(self) -> Counter:
        return Counter(r["body"]["input"] for r in self.calls("/audio/speech"))


def test_paid_engine_killed_workers_repeat_no_answered_request(tmp_path, monkeypatch):
    """The server holds every request after the 10th, so both workers stall with requests in
    flight; once the 10 answered files are on disk, both workers are killed and the server
    released. Shards hold 2 x CONCURRENCY texts and 10 is not a multiple of that, so the lost
    shards include texts already answered and written: Ray re-runs those shards on the
    restarted workers, which must skip them: a text whose audio had been returned is never asked
    again. What may be asked twice is only what was in flight on a worker when it died (its
    answer died with it): at most kills x CONCURRENCY texts, and at least one, since each killed
    worker was waiting on a held request. A re-run then sends no request at all."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    texts = write_texts(tmp_path / "t.jsonl", N_PAID, stem="p")
    audio, out = tmp_path / "audio", tmp_path / "out.jsonl"
    with CountingServer() as server:
        server.speech_rate = 16000
        server.hold_after = 10
        args = ["synthesize", texts, "-t", "openai", "--voices", "alloy", "-d", audio, "-o", out,
                "-O", f"base_url={server.url}", "-O", f"max_concurrency={CONCURRENCY}",
                "--cluster", "ray", "--jobs", "2"]
        run = Run(*args)
        run.start()
        wav_files = lambda: len(list(audio.glob("*.wav")))  # noqa: E731
        port = int(server.url.split(":")[2].split("/")[0])
        wait_for(lambda: len(server.calls("/audio/speech")) > 10 and wav_files() == 10)
        wait_for(lambda: len(waiting_on(port)) == 2)  # both workers reach held requests (on a busy
        settled(lambda: len(server.calls("/audio/speech")))  # machine one may start seconds later)
        assert wav_files() == 10
        answered = set(server.answered)
        in_flight = set(server.asked()) - answered
        kills = len(kill_workers(port=port, most=2))
        assert kills == 2, "both workers should have been waiting on the server"
        server.release()
        result = run.finish()
        ok(result)

        asked = server.asked()
        repeated = {t: n for t, n in asked.items() if n > 1}
        assert sorted(asked) == sorted(json.loads(x)["text"] for x in texts.read_text().splitlines())
        assert not answered & set(repeated), "audio already returned was requested again"
        assert set(repeated) <= in_flight
        assert 1 <= sum(n - 1 for n in repeated.values()) <= kills * CONCURRENCY
        records = lines(out)
        assert sorted(r["id"] for r in records) == [f"p{i:03d}-alloy" for i in range(N_PAID)]
        assert_clean(audio, records)
        # usage comes back with each shard; what a killed worker spent in its lost shard
        # (at most one shard each: 2 x CONCURRENCY requests) is lost with it
        usage = json.loads(re.search(r"Usage: (\{.*\})", result.stderr).group(1))
        total = sum(asked.values())
        assert total - kills * 2 * CONCURRENCY <= usage["requests"] <= total

        before = len(server.calls("/audio/speech"))
        ok(invoke(*args))  # the same command: everything is there
        assert lines(out) == records
        ok(invoke(*[tmp_path / "again.jsonl" if a == out else a for a in args]))  # new records, cached audio
        assert len(lines(tmp_path / "again.jsonl")) == N_PAID
        assert len(server.calls("/audio/speech")) == before, "a re-run paid again"


def test_a_rejected_key_ends_the_cluster_run_in_one_line(tmp_path, monkeypatch):
    """A fatal error on a worker (HTTP 401) ends the run with the engine's one-line error, and
    the other shards send no more requests than were already in flight."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    texts = write_texts(tmp_path / "t.jsonl", N_PAID, stem="k")
    with FakeOpenAI() as server:
        server.speech_rate = 16000
        server.speech_script.extend([("status", 401, {})] * 4)
        result = invoke("synthesize", texts, "-t", "openai", "--voices", "alloy", "-d", tmp_path / "a",
                        "-o", tmp_path / "out.jsonl", "-O", f"base_url={server.url}",
                        "-O", f"max_concurrency={CONCURRENCY}", "--cluster", "ray", "--jobs", "2")
        assert isinstance(result.exception, SercliError), result.exception  # the CLI prints it as one line
        assert str(result.exception) == (
            f"OpenAI authentication failed (HTTP 401) at {server.url}: OPENAI_API_KEY was rejected")
        assert len(server.calls("/audio/speech")) < N_PAID
