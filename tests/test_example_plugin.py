"""The example plugin (examples/sercli-example-plugin), pip-installed for real, used through the
real CLI: one class per plugin family and a subcommand, written against the public contract."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_here, write_tone
from sercli.hookspecs import families
from test_plugin_faults import install, one_line_about

PLUGIN = ROOT / "examples" / "sercli-example-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True,
    )
    return target


def sercli(site: Path, *args, check: bool = True, here: bool = False) -> subprocess.CompletedProcess:
    """The CLI with ``site``'s plugins installed: a process of its own (PYTHONPATH), or with
    ``here`` in this process (``run_here``), where what is checked is what the command does."""
    if here:
        proc = run_here(*args, site=site)
    else:
        path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "SERCLI_QUIET": ""}
        proc = subprocess.run([sys.executable, "-m", "sercli", *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, f"sercli {' '.join(map(str, args))}:\n{proc.stderr}"
        assert "Traceback" not in proc.stderr and "Warning: plugin" not in proc.stderr, proc.stderr
    return proc


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_it_registers_one_of_each_family(site):
    rows = {r["name"]: r for r in json.loads(sercli(site, "plugins", "--json").stdout)}
    example = rows["example"]
    assert example["version"] == "0.2.0" and example["error"] is None
    names = {family: [i["name"] for i in items] for family, items in example["registered"].items()}
    assert names == {"backbone": ["energy"], "llm": ["example"], "tts": ["example"],
                     "strategy": ["balance"], "head": ["last-layer"], "corpus": ["folders"], "command": ["example-stats"],
                     "gate": ["duration"], "tracker": ["jsonl-log"], "cluster": ["threads"],
                     "exporter": ["pt2"], "vad": ["peaks"]}
    assert set(names) == set(families())  # every hook family, derived from the hookspecs
    assert all(i["description"] for items in example["registered"].values() for i in items)
    assert "example-stats" in sercli(site, "--help").stdout


def test_each_family_through_the_cli(site, tmp_path):
    """In this process (extraction's worker processes import the plugin from ``site`` too)."""
    here = functools.partial(sercli, here=True)
    # LLM backend -> TTS engine
    text = tmp_path / "text.jsonl"
    here(site, "gen-text", "--backend", "example", "-e", "angry,sad", "-n", "3", "-o", text)
    assert [r["emotion"] for r in records(text)] == ["angry"] * 3 + ["sad"] * 3
    synth = tmp_path / "synth.jsonl"
    here(site, "synthesize", text, "--engine", "example", "-d", tmp_path / "audio",
           "--voices-per-text", "2", "-o", synth)
    made = records(synth)
    assert len(made) == 12 and {r["voice"] for r in made} <= {"low", "mid", "high"}
    assert all(Path(r["audio"]).is_file() and r["duration"] > 0.2 for r in made)
    bad = here(site, "synthesize", text, "--engine", "example", "-d", tmp_path / "audio",
                 "--voices", "mid,tenor", check=False)
    assert bad.returncode == 1 and "tenor" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    # corpus: <emotion>/<speaker>_*.wav
    corpus = tmp_path / "corpus"
    for s, speaker in enumerate(("s1", "s2", "s3")):
        for e, emotion in enumerate(("angry", "sad")):
            for k in range(3 if emotion == "angry" else 2):
                write_tone(corpus / emotion / f"{speaker}_{k}.wav", seconds=0.4,
                           freq=150 + 120 * e + 10 * s + 5 * k)
    (corpus / "angry" / "README.txt").write_text("not audio")
    real = tmp_path / "real.jsonl"
    proc = here(site, "prepare", "folders", corpus, "-o", real)
    rows = records(real)
    assert len(rows) == 15 and {r["speaker"] for r in rows} == {"s1", "s2", "s3"}
    assert "folders" in here(site, "prepare", "--help").stdout  # corpora listed at runtime

    # backbone
    feats = {}
    for name, path in (("real", real), ("synth", synth)):
        feats[name] = tmp_path / f"{name}-feats.jsonl"
        here(site, "extract", path, "--backbone", "energy", "--store", tmp_path / "store",
             "-o", feats[name])
    assert records(feats["real"])[0]["features"]["shape"][2] == 2
    # cluster: the same features, extracted shard by shard on the plugin's threads
    here(site, "extract", real, "--backbone", "energy", "--store", tmp_path / "store-threads",
           "--cluster", "threads://2", "-o", tmp_path / "threads.jsonl")
    assert [r["id"] for r in records(tmp_path / "threads.jsonl")] == [r["id"] for r in records(feats["real"])]
    from sercli.learning.data import read_features

    for a, b in zip(records(tmp_path / "threads.jsonl"), records(feats["real"])):
        assert np.array_equal(read_features(a), read_features(b))

    # strategy
    run = tmp_path / "run"
    proc = here(site, "train", feats["real"], "--synthetic", feats["synth"], "--strategy", "balance",
                  "--out", run, "--test-speakers", "s3", "--val-speakers", "s2", "--epochs", "2",
                  "--head", "mlp", "-O", "hidden=8")
    assert run.is_dir()

    # head: chosen by --head, its options by -O, reloaded by eval
    run = tmp_path / "run-head"
    here(site, "train", feats["real"], "--head", "last-layer", "-O", "dropout=0.1", "--out", run,
           "--test-speakers", "s3", "--val-speakers", "s2", "--epochs", "2")
    head = json.loads((run / "config.json").read_text())["head"]
    assert head["name"] == "last-layer" and head["options"] == {"dropout": 0.1}
    here(site, "eval", run)

    # tracker: the run's scalars, as the plugin writes them
    here(site, "track", run, "--tracker", "jsonl-log", "--out", tmp_path / "tracked")
    logged = records(tmp_path / "tracked" / "run-head" / "scalars.jsonl")
    assert logged[0]["run"] == "run-head" and logged[0]["params"]["head"]["name"] == "last-layer"
    ua = [r["value"] for r in logged if r.get("tag") == "test/UA"]
    assert ua == [json.loads((run / "metrics.json").read_text())["jobs"][0]["UA"]]

    # run exporter: the run as torch.export programs, read back by `sercli predict DIR`
    s3 = tmp_path / "s3.jsonl"
    s3.write_text("".join(json.dumps(r) + "\n" for r in records(real) if r["speaker"] == "s3"))
    here(site, "export", "pt2", run, "-o", tmp_path / "pt2")
    assert {p.name for p in (tmp_path / "pt2").iterdir()} == {"encoder.pt2", "head.pt2", "manifest.json"}
    ours, exported = ({r["id"]: r["probabilities"] for r in map(json.loads, here(site, "predict", m, s3).stdout.splitlines())}
                      for m in (run, tmp_path / "pt2"))
    assert len(ours) == 5 and ours.keys() == exported.keys()
    assert all(abs(ours[i][k] - exported[i][k]) <= 1e-4 for i in ours for k in ours[i])

    # voice-activity detector: the tones of a long file, one record each
    rng = np.random.default_rng(0)
    parts = [np.zeros(8000, np.float32)]
    for k in range(6):
        t = np.arange(6400) / 16000
        parts += [(0.3 * np.sin(2 * np.pi * (150 + 120 * (k % 2) + 10 * rng.random()) * t)).astype(np.float32),
                  np.zeros(8000, np.float32)]
    import soundfile as sf

    sf.write(str(tmp_path / "long.wav"), np.concatenate(parts), 16000)
    proc = here(site, "predict", run, tmp_path / "long.wav", "--segments", "--vad", "peaks", "-O", "gap_ms=100")
    segments = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [round(s["start"], 2) for s in segments] == [round(0.5 + 0.9 * k, 2) for k in range(6)]
    assert all(abs(s["end"] - s["start"] - 0.4) < 0.011 for s in segments)

    # subcommand
    proc = here(site, "example-stats", real, synth)
    assert "27 records" in proc.stderr and "angry 15" in proc.stderr and "synthetic 12" in proc.stderr


def test_a_plugin_command_with_a_builtin_name_is_refused(tmp_path):
    install(tmp_path, "cmd-plugin", {"cmdplug": "cmd_plug"}, {"cmd_plug": (
        "from sercli.hookspecs import hookimpl\n"
        "def train():\n    print('hijacked')\n"
        "def hello(name: str = 'you'):\n    '''Say hello.'''\n    import sys\n    sys.stderr.write(f'hello {name}\\n')\n"
        "@hookimpl\ndef register_commands(register):\n    register(train)\n    register(hello)\n"
    )})
    proc = sercli(tmp_path, "--help", check=False)
    assert proc.returncode == 0 and "hello" in proc.stdout
    assert "built-in command" in one_line_about(proc.stderr, "cmdplug")
    proc = sercli(tmp_path, "hello", "--name", "x", check=False)
    assert proc.returncode == 0 and "hello x" in proc.stderr
    proc = sercli(tmp_path, "train", "--help", check=False)
    assert "hijacked" not in proc.stdout + proc.stderr and "--strategy" in proc.stdout


def test_a_misspelt_hook_is_reported(tmp_path):
    install(tmp_path, "typo-plugin", {"typo": "typo_plug"}, {"typo_plug": (
        "from sercli.hookspecs import hookimpl\n"
        "@hookimpl\ndef register_backbone(register):\n    pass\n"
    )})
    proc = sercli(tmp_path, "plugins", "--json", check=False)
    assert proc.returncode == 0
    assert "did you mean 'register_backbones'" in one_line_about(proc.stderr, "typo")
