"""Ctrl-C, SIGTERM, SIGHUP and closed pipes, sent for real to the real CLI.

An interrupted command says "Interrupted" on stderr and exits 128 + the signal number
(130, 143, 129); what it wrote is whole JSON lines, no process it started outlives it, and
the same command run again completes the output with every record exactly once. A closed
stdout (`sercli ... | head -1`) ends a command quietly with 141 (128 + SIGPIPE).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, write_tone

SLOW_PLUGIN = '''
import time
from sercli.hookspecs import hookimpl
from sercli.base import LLMBackend, TTSEngine
from sercli.core.errors import RecordError


class Slow(LLMBackend):
    """One sentence every 50 ms, always the same ones."""
    name = "slow"

    def generate(self, emotion, n, *, seed, exclude):
        i = 0
        while n:
            text = f"This is {emotion} sentence number {i}."
            i += 1
            if text.lower() not in exclude:  # gen-text passes them lower-cased
                time.sleep(0.05)
                n -= 1
                yield text


class Quitter(TTSEngine):
    """Speaks two utterances, then raises KeyboardInterrupt in its worker thread."""
    name = "quitter"
    max_concurrency = 2
    calls = 0

    def voices(self, emotion=None):
        return ["v1"]

    def synthesize(self, text, emotion, voice, path):
        import numpy as np
        from sercli.core.audio import write_wav

        type(self).calls += 1
        if type(self).calls > 2:
            time.sleep(0.2)
            raise KeyboardInterrupt
        write_wav(path, np.zeros(1600, dtype="float32"), 16000)


@hookimpl
def register_llm_backends(register):
    register(Slow)


@hookimpl
def register_tts_engines(register):
    register(Quitter)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    """A third-party plugin installed the way importlib.metadata finds one: dist-info + module."""
    root = tmp_path_factory.mktemp("site")
    info = root / "sercli_slow-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sercli-slow\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sercli]\nslow = sercli_slow\n")
    (root / "sercli_slow.py").write_text(SLOW_PLUGIN)
    return str(root)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, even under a background shell


def start(*args, env: dict | None = None) -> subprocess.Popen:
    """`python -m sercli ARGS` in its own process group (the group a terminal would signal)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sercli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SERCLI_QUIET": "", **(env or {})},
        start_new_session=True, preexec_fn=_default_sigint,
    )


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended before {n} lines in {path.name}: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {n} lines in {path} after {timeout} s")


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """Wait for the CLI, then for every process it started (none may stay behind)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the interrupted command did not end")
    deadline = time.monotonic() + 5
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = group_members(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"
    return proc.returncode, err


def assert_interrupted(code: int, err: str, sig: int) -> None:
    assert code == 128 + sig, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1].startswith("Interrupted"), err


def jsonl(path: Path) -> list[dict]:
    """Every line of ``path`` is one whole JSON record (no torn last line)."""
    data = path.read_text() if path.exists() else ""
    assert not data or data.endswith("\n"), f"torn last line in {path.name}: {data[-80:]!r}"
    return [json.loads(line) for line in data.splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_gen_text_interrupted_keeps_whole_records_and_resumes(tmp_path, plugin_path, sig):
    out = tmp_path / "text.jsonl"
    args = ("gen-text", "-b", "slow", "-e", "sad,happy", "-n", "15", "-o", out)
    env = {"PYTHONPATH": plugin_path}
    proc = start(*args, env=env)
    wait_for_lines(out, 3, proc)
    os.killpg(proc.pid, sig)  # as a terminal does, for Ctrl-C or when it closes
    code, err = finish(proc)
    assert_interrupted(code, err, sig)
    assert 3 <= len(jsonl(out)) < 30
    run_cli(*args, env=env, check=True)
    ids = [r["id"] for r in jsonl(out)]
    assert len(ids) == 30 and len(set(ids)) == 30


def test_ctrl_c_while_plugins_load_is_an_interrupt_not_a_plugin_error(tmp_path):
    """Plugins that raise KeyboardInterrupt themselves are reported and skipped; a real Ctrl-C
    during a plugin's (slow) import still ends the command."""
    info = tmp_path / "sercli_sleepy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sercli-sleepy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sercli]\nsleepy = sercli_sleepy\n")
    marker = tmp_path / "importing"
    (tmp_path / "sercli_sleepy.py").write_text(
        f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x\\n')\ntime.sleep(30)\n"
    )
    proc = start("plugins", "--json", env={"PYTHONPATH": str(tmp_path)})
    wait_for_lines(marker, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    code, err = finish(proc, timeout=20)
    assert_interrupted(code, err, signal.SIGINT)


@pytest.fixture(scope="module")
def sentences(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.jsonl"
    run_cli("gen-text", "-e", "angry,sad", "-n", "4", "-o", path, check=True)
    return path


def test_sigterm_in_synthesize_keeps_whole_records_and_resumes(tmp_path, sentences):
    out = tmp_path / "audio.jsonl"
    args = ("synthesize", sentences, "--engine", "espeak", "--voices-per-text", "2", "-d", tmp_path / "wav", "-o", out)
    proc = start(*args)
    wait_for_lines(out, 1, proc)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert_interrupted(code, err, signal.SIGTERM)
    assert 1 <= len(jsonl(out)) < 16
    run_cli(*args, check=True)
    ids = [r["id"] for r in jsonl(out)]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert not list((tmp_path / "wav").glob(".*.tmp"))  # no half-written audio left behind


def test_keyboard_interrupt_in_a_worker_thread_is_an_interrupt(tmp_path, sentences, plugin_path):
    out = tmp_path / "audio.jsonl"
    proc = start("synthesize", sentences, "--engine", "quitter", "-d", tmp_path / "wav", "-o", out,
                 env={"PYTHONPATH": plugin_path})
    code, err = finish(proc)
    assert_interrupted(code, err, signal.SIGINT)
    assert len(jsonl(out)) <= 2


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tones")
    manifest = root / "in.jsonl"
    with open(manifest, "w") as fh:
        for i in range(100):
            wav = write_tone(root / f"t{i}.wav", seconds=1.0, freq=150.0 + 3 * i)
            fh.write(json.dumps({"id": f"t{i}", "audio": str(wav), "emotion": "sad"}) + "\n")
    return manifest


def ignores_sigint(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return bool(int(status.split("SigIgn:")[1].split()[0], 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.parametrize("sig,group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["SIGTERM", "ctrl-c"])
def test_extract_with_workers_interrupted_leaves_no_process_and_resumes(tmp_path, tones, sig, group):
    store, out = tmp_path / "store", tmp_path / "feats.jsonl"
    args = ("extract", tones, "--backbone", "fbank", "--workers", "2", "--shard-mb", "0.001",
            "--store", store, "-o", out)
    proc = start(*args)
    wait_for_lines(store / "index.jsonl", 10, proc)
    if group:  # Ctrl-C in a terminal: SIGINT to every process of the job
        # A worker interrupted between two jobs dies with a traceback, or holding a queue
        # lock, and then the pool never shuts down: Ctrl-C is the main process's alone.
        helpers = [pid for pid in group_members(proc.pid) if pid != proc.pid]
        takes_ctrl_c = [pid for pid in helpers if not ignores_sigint(pid)]
        os.killpg(proc.pid, sig)
    else:
        takes_ctrl_c = []
        proc.send_signal(sig)
    code, err = finish(proc)
    assert not takes_ctrl_c, f"worker processes that would take Ctrl-C: {takes_ctrl_c}"
    assert_interrupted(code, err, sig)
    assert len(jsonl(store / "index.jsonl")) < 100
    jsonl(out)
    run_cli(*args, check=True)
    ids = [r["id"] for r in jsonl(out)]
    assert len(ids) == 100 and len(set(ids)) == 100


@pytest.mark.parametrize(
    "args",
    [("gen-text", "-n", "50"), ("plugins", "--json"), ("--help",), ("gen-text", "-n", "1", "-e", "sad", "--dry-run", "--help")],
    ids=["gen-text", "plugins", "help", "command-help"],
)
def test_closed_stdout_ends_quietly(args):
    proc = subprocess.Popen([sys.executable, "-m", "sercli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "SERCLI_QUIET": "1"})
    proc.stdout.close()  # the reader is gone before the first record: `sercli ... | head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == "", err


SLOW_IMPORT = '''
import importlib.abc, pathlib, sys, time


class SlowTyper(importlib.abc.MetaPathFinder):
    """Makes `import typer` (sercli.cli's first import) take seconds, and says when it starts."""

    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            pathlib.Path(MARKER).write_text("importing\\n")
            time.sleep(5)
        return None


sys.meta_path.insert(0, SlowTyper())
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_while_sercli_imports_is_an_interrupt(tmp_path, sig):
    """Ctrl-C right after Enter lands while sercli still imports its libraries: "Interrupted" and
    128 + N, not a traceback (SIGINT) or a silent death (SIGTERM)."""
    marker = tmp_path / "marker"
    (tmp_path / "sitecustomize.py").write_text(f"MARKER = {str(marker)!r}\n" + SLOW_IMPORT)
    proc = start("gen-text", "-n", "1", "-o", tmp_path / "out.jsonl", env={"PYTHONPATH": str(tmp_path)})
    wait_for_lines(marker, 1, proc)
    os.killpg(proc.pid, sig)
    code, err = finish(proc, timeout=20)
    assert_interrupted(code, err, sig)
    assert not (tmp_path / "out.jsonl").exists()


SWALLOWS = '''
import time
from sercli.hookspecs import hookimpl
from sercli.base import LLMBackend


class Slow:
    def __del__(self):
        time.sleep(0.5)  # a signal here is raised where Python ignores exceptions


class Swallow(LLMBackend):
    name = "swallow"

    def generate(self, emotion, n, *, seed, exclude):
        for i in range(n):
            Slow()
            yield f"This is {emotion} sentence number {i}."


@hookimpl
def register_llm_backends(register):
    register(Swallow)
'''


def test_a_signal_raised_where_python_ignores_exceptions_still_ends_the_command(tmp_path):
    """An interrupt raised in a __del__ (or a weakref callback, an import lock's clean-up) is
    printed as "Exception ignored" and lost: the command ran on to the end with exit 0."""
    site = tmp_path / "site"
    info = site / "swallow-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: swallow\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sercli]\nswallow = swallow_plugin\n")
    (site / "swallow_plugin.py").write_text(SWALLOWS)
    out = tmp_path / "text.jsonl"
    proc = start("gen-text", "-b", "swallow", "-e", "sad", "-n", "20", "-o", out,
                 env={"PYTHONPATH": str(site), "SERCLI_LOAD_PLUGINS": "swallow"})
    wait_for_lines(out, 1, proc)
    time.sleep(0.2)  # inside a __del__
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert_interrupted(code, err, signal.SIGTERM)
    assert len(jsonl(out)) < 20


def test_the_first_signal_decides_the_exit_code(tmp_path, plugin_path):
    """SIGTERM, then Ctrl-C while the command cleans up: still 143."""
    out = tmp_path / "text.jsonl"
    proc = start("gen-text", "-b", "slow", "-e", "sad", "-n", "50", "-o", out, env={"PYTHONPATH": plugin_path})
    wait_for_lines(out, 2, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err
    jsonl(out)


def test_closed_standard_streams_cost_nothing_but_their_output(tmp_path):
    """`sercli ... >&-` or `2>&-`: the run completes into its -o file, whose descriptor is
    never 1 or 2 (progress would land in it); records sent to a closed stdout fail in one line."""
    for fd in (1, 2):
        out = tmp_path / f"closed{fd}.jsonl"
        proc = subprocess.run(
            ["bash", "-c", f'exec {fd}>&-; exec "$0" -m sercli gen-text -e sad -n 3 -o "$1"', sys.executable, str(out)],
            capture_output=True, text=True, env={**os.environ, "SERCLI_QUIET": "", "SERCLI_PROGRESS": "1"}, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert [r["emotion"] for r in jsonl(out)] == ["sad"] * 3
    proc = subprocess.run(["bash", "-c", 'exec 1>&-; exec "$0" -m sercli gen-text -e sad -n 3', sys.executable],
                          capture_output=True, text=True, env={**os.environ, "SERCLI_QUIET": "1"}, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: stdout is closed"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1
