"""Shared test helpers: run the real CLI in a subprocess (or, where the process is not what a test
is about, in this process: ``run_here``), make small audio, find shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    env = os.environ.get("SERCLI_SHARED_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data_dir() -> Path:
    path = shared_data()
    if path is None:
        pytest.skip("shared corpora (../shared/data) not present")
    return path


def run_cli(*args, input: str | None = None, env: dict | None = None, cwd=None, check: bool = False):
    """Run `python -m sercli ARGS` exactly as a user would; returns CompletedProcess."""
    full_env = {**os.environ, "SERCLI_QUIET": "", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "sercli", *map(str, args)],
        input=input, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"sercli {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


class _Streams:
    """stdin, stdout and stderr of one in-process command: stdout as ``sercli.core.stdio`` makes
    it (records to the real stdout, a plugin's prints to stderr)."""

    def __init__(self, input: str | None):
        import io

        from sercli.core import stdio

        self.stdin = io.StringIO(input or "")
        self.out, self.err = io.StringIO(), io.StringIO()
        self.stdout = stdio._Stdout(self.out)

    def __enter__(self):
        self.saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = self.stdin, self.stdout, self.err
        return self

    def __exit__(self, *exc):
        sys.stdin, sys.stdout, sys.stderr = self.saved


def _fresh_process_state() -> None:
    """What a new `python -m sercli` process starts without: loaded plugins, cached features,
    decoded audio, model replicas, a caught signal."""
    from sercli import cli as cli_module
    from sercli.core import fastexit, plugins
    from sercli.features import read, workers
    from sercli.learning import audio_examples, finetune

    plugins.reset()
    cli_module._plugin_cache = None
    read._stores.clear()
    read._cache.clear()
    read._cache_bytes = 0
    read._finite.clear()
    audio_examples._audio.clear()
    audio_examples._audio_bytes = 0
    finetune._stats.clear()
    workers._replica.clear()
    fastexit._first = None


def run_here(*args, input: str | None = None, env: dict | None = None, cwd=None, check: bool = False,
             site: Path | None = None):
    """`sercli ARGS` in this process, through the CLI's own error boundary (``sercli.cli._run``,
    what ``main`` runs), with stdout and stderr kept apart: returns a CompletedProcess as
    ``run_cli`` does, with the exit code ``main`` would exit with. For tests about what a command
    does and says, not about the process (signals, exit at interpreter level, file descriptors,
    workers dying): those use ``run_cli``. Each call starts from a new process's state (plugins,
    caches, environment, working directory, warnings, torch threads and signal handlers are put
    back afterwards). An ``env`` that changes PYTHONPATH runs in a subprocess (``run_cli``).

    ``site``: a folder of installed distributions (plugins: dist-info folders and their modules),
    ahead of sys.path for this call, as PYTHONPATH would put it; the modules imported from it are
    forgotten afterwards, so the next call imports its own."""
    import importlib
    import signal
    import traceback
    import warnings

    if env and "PYTHONPATH" in env:
        return run_cli(*args, input=input, env=env, cwd=cwd, check=check)
    from sercli import cli as cli_module

    if site is not None:
        site = str(site)
        sys.path.insert(0, site)
        importlib.invalidate_caches()

    argv = [str(a) for a in args]
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    os.environ.update({"SERCLI_QUIET": "", **(env or {})})
    try:
        if cwd is not None:
            os.chdir(cwd)
        _fresh_process_state()
        with _Streams(input) as streams, warnings.catch_warnings():
            warnings.resetwarnings()  # a new process's filters, each warning shown on stderr
            warnings.simplefilter("default")
            warnings.showwarning = warnings._showwarning_orig
            hoisted = cli_module._hoist(argv)
            debug = "--debug" in hoisted or bool(os.environ.get("SERCLI_DEBUG"))
            try:
                code = cli_module._run(hoisted, debug)
            except SystemExit as exc:  # as the interpreter ends on one
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # uncaught (--debug re-raises): a traceback and exit code 1
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if threads is not None:
            torch.set_num_threads(threads)
        _fresh_process_state()
        if site is not None:
            sys.path.remove(site)
            for name, module in list(sys.modules.items()):
                if str(getattr(module, "__file__", None) or "").startswith(site + os.sep):
                    del sys.modules[name]
            importlib.invalidate_caches()
    proc = subprocess.CompletedProcess(["sercli", *argv], code, streams.out.getvalue(), streams.err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f"sercli {' '.join(argv)} failed:\n{proc.stderr}")
    return proc


# Ray's workers get what a test sets in os.environ only through the runtime environment given at
# ray.init: the key the cluster tests' paid engine (tests/openai_server.py) expects, and only the
# plugins the cluster tests use (loading every plugin costs each new worker seconds)
RAY_TEST_ENV = {"OPENAI_API_KEY": "sk-test-cluster-synth",
                "SERCLI_LOAD_PLUGINS": "espeak,openai,fbank,strategies,heads"}


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray cluster of two CPUs for the whole test run, started by the first test that
    asks for it (the modules marked ``xdist_group("ray")``, which one xdist worker runs): the
    ``ray`` plugin joins an initialised Ray and leaves it running. Starting Ray costs seconds of
    both cores, once instead of once per module."""
    import logging

    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": RAY_TEST_ENV})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tests that run models in-process use one thread: on small shared machines torch's intra-op threads
    mostly wait for each other (the reason sercli runs one single-threaded model per core)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli():
    return run_cli


def engine_from_plugin(monkeypatch, module, name: str, options: dict):
    """The TTS engine ``name`` as `sercli synthesize -t NAME -O ...` gets it: through the plugin
    registry with only ``module``'s plugin loaded (registered by hand when this checkout's entry
    point is not installed yet, which a reinstall brings)."""
    import importlib.metadata

    from sercli.core import plugins as pl

    monkeypatch.setenv("SERCLI_LOAD_PLUGINS", name)
    pl.reset()
    try:
        if name not in {ep.name for ep in importlib.metadata.entry_points(group="sercli")}:
            pl.registry().register_module(module, name)
        return pl.create("tts", name, options)
    finally:
        pl.reset()


def write_tone(path: Path, seconds: float = 1.0, freq: float = 220.0, sr: int = 16000) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.astype(np.float32), sr)
    return path
