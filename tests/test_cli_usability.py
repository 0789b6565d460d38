"""The command line as a newcomer meets it: --version, global flags anywhere, -q that quiets,
readable help with examples at 80 columns, gen-text checking its emotions before any work."""

from __future__ import annotations

import inspect
import json
from importlib.metadata import version

from conftest import write_tone
from sercli import cli as sercli_cli

COMMANDS = {"gen-text": "gen_text", "synthesize": "synthesize", "extract": "extract", "filter": "filter_cmd", "degrade": "degrade",
            "train": "train", "eval": "eval_cmd", "predict": "predict", "prepare": "prepare", "plugins": "plugins_cmd"}


def test_version_names_sercli_torch_and_transformers(cli):
    out = cli("--version", check=True).stdout.strip()
    assert len(out.splitlines()) == 1
    for dist in ("sercli", "torch", "transformers"):
        assert f"{dist} {version(dist)}" in out


def _generic_csv(tmp_path):
    rows = ["path,label,speaker"]
    for i, label in enumerate(["angry", "sad", "angry", "sad"]):
        write_tone(tmp_path / f"a{i}.wav", seconds=0.3, freq=200 + 50 * i)
        rows.append(f"a{i}.wav,{label},s{i % 2}")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "c.csv"


def test_quiet_and_debug_anywhere(cli, tmp_path):
    csv = _generic_csv(tmp_path)
    loud = cli("prepare", "generic", csv, check=True)
    assert "speaker" in loud.stderr  # the summary tables
    for args in (("-q", "prepare", "generic", csv), ("prepare", "generic", csv, "-q"), ("prepare", "-q", "generic", csv)):
        proc = cli(*args, check=True)
        assert proc.stderr == "" and len(proc.stdout.splitlines()) == 4, args
    # a warning still shows under -q
    (tmp_path / "c2.csv").write_text(csv.read_text() + "missing.wav,angry,s0\n")
    proc = cli("prepare", "generic", tmp_path / "c2.csv", "-q")
    assert "missing.wav" in proc.stderr and "speaker" not in proc.stderr
    # --debug after the subcommand shows the traceback
    bad = cli("prepare", "generic", tmp_path / "nothing.csv", "--debug")
    assert bad.returncode == 1 and "Traceback" in bad.stderr
    assert "Traceback" not in cli("prepare", "generic", tmp_path / "nothing.csv").stderr


def test_help_is_readable_with_examples(cli):
    builtin = {c.name: c.callback for c in sercli_cli.app.registered_commands}
    assert len(builtin) >= 12
    for name, fn in builtin.items():
        proc = cli(name, "--help", env={"COLUMNS": "80", "TERM": "dumb"}, check=True)
        text = proc.stdout
        assert "<" not in text.replace("<=", "").replace("<-", ""), (name, [l for l in text.splitlines() if "<" in l])
        assert max(len(line) for line in text.splitlines()) <= 80, name
        assert "Examples:" in text, name
        doc = inspect.cleandoc(fn.__doc__)
        examples = [l.strip() for l in doc.split("Examples:")[1].splitlines() if l.strip()]
        assert examples, name
        for line in examples:  # each example whole on one line, indented under the heading
            assert any(out.startswith("   ") and out.strip() == line for out in text.splitlines()), (name, line)


def test_gen_text_checks_every_emotion_first(cli, tmp_path):
    out = tmp_path / "t.jsonl"
    proc = cli("gen-text", "-e", "angry,happy,neutral,sad,calm,frustrated", "-n", "2", "-o", out)
    assert proc.returncode == 1 and "'frustrated'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()
    # a new --seed on an old -o is refused, saying what to do
    cli("gen-text", "-e", "angry", "-n", "2", "-o", out, check=True)
    again = cli("gen-text", "-e", "angry", "-n", "3", "-o", out, "--seed", "7")
    assert again.returncode == 1 and "--seed" in again.stderr
    assert len(out.read_text().splitlines()) == 2
    assert all(json.loads(l)["provenance"]["gen_text"]["seed"] == 0 for l in out.read_text().splitlines())
