"""Shared test helpers: run the real CLI in a subprocess, make small audio, find shared data."""

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


def write_tone(path: Path, seconds: float = 1.0, freq: float = 220.0, sr: int = 16000) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.astype(np.float32), sr)
    return path
