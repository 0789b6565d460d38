"""The command line as a user meets it: help, plugin listing, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import write_tone

FAMILIES = ("llm", "tts", "backbone", "strategy")


def test_help_lists_the_pipeline(cli):
    proc = cli("--help", check=True)
    for command in ("gen-text", "synthesize", "extract", "train", "eval", "plugins"):
        assert command in proc.stdout


def test_startup_imports_nothing_heavy():
    code = "import sys, sercli.cli; print(sorted(m for m in ('torch','transformers','openai','numpy','sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugins_json_lists_every_family(cli):
    rows = json.loads(cli("plugins", "--json", check=True).stdout)
    families = {fam for row in rows for fam in row["registered"]}
    assert set(FAMILIES) <= families
    assert all(row["error"] is None for row in rows), [r for r in rows if r["error"]]
    # built-ins are registered through the entry-point group like any third-party plugin
    names = {row["name"] for row in rows}
    assert {"template", "espeak", "fbank", "strategies"} <= names


def test_unknown_plugin_is_one_line_with_known_names(cli, tmp_path):
    rec = tmp_path / "in.jsonl"
    rec.write_text(json.dumps({"id": "a", "audio": str(write_tone(tmp_path / "a.wav"))}) + "\n")
    proc = cli("extract", rec, "--backbone", "fbnak", "--store", tmp_path / "st")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "Unknown backbone 'fbnak'" in lines[0] and "Did you mean 'fbank'" in lines[0]
    assert "egemaps" in lines[0]  # the known names are listed


def test_bad_json_line_names_the_line(cli, tmp_path):
    rec = tmp_path / "in.jsonl"
    rec.write_text('{"id": "a", "audio": "x.wav"}\n{not json\n')
    proc = cli("extract", rec, "--store", tmp_path / "st")
    assert proc.returncode == 1
    assert "line 2: not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_field_names_the_line(cli, tmp_path):
    rec = tmp_path / "in.jsonl"
    rec.write_text('{"id": "a", "text": "hello"}\n{"id": "b", "emotion": "sad"}\n')
    proc = cli("synthesize", rec, "-d", tmp_path / "audio")
    assert proc.returncode == 1
    assert "line 1: missing 'emotion'" in proc.stderr


def test_bad_option_is_one_clear_line(cli, tmp_path):
    rec = tmp_path / "in.jsonl"
    rec.write_text(json.dumps({"id": "a", "audio": str(write_tone(tmp_path / "a.wav"))}) + "\n")
    proc = cli("extract", rec, "--backbone", "fbank", "-O", "n_mels=lots", "--store", tmp_path / "st")
    assert proc.returncode == 1
    assert "Bad option for backbone 'fbank': n_mels" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(cli, tmp_path):
    proc = cli("--debug", "extract", tmp_path / "missing.jsonl")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_corrupt_and_empty_audio_are_skipped_and_reported(cli, tmp_path):
    good = write_tone(tmp_path / "good.wav")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    import soundfile as sf

    silent = tmp_path / "zero_frames.wav"
    sf.write(str(silent), [], 16000, format="WAV", subtype="PCM_16")
    recs = [{"id": p.stem, "audio": str(p), "emotion": "sad"} for p in (good, corrupt, empty, silent)]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    proc = cli("extract", manifest, "--backbone", "fbank", "--store", tmp_path / "st")
    assert proc.returncode == 1
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in out] == ["good"]  # the good record still goes through, on stdout
    for bad in ("corrupt", "empty", "zero_frames"):
        assert bad in proc.stderr
    assert "3 of 4 records could not be extracted" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_broken_plugin_is_one_warning_and_the_cli_still_works(tmp_path):
    # a fake installed distribution whose entry point cannot be imported
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sercli]\nbroken = sercli_does_not_exist\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "sercli", "plugins", "--json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0
    warnings = [l for l in proc.stderr.splitlines() if "broken" in l]
    assert len(warnings) == 1 and "failed to load" in warnings[0]
    rows = json.loads(proc.stdout)
    assert any(r["name"] == "broken" and r["error"] for r in rows)
    assert any(r["name"] == "fbank" and not r["error"] for r in rows)


def test_load_plugins_env_limits_loading(cli):
    rows = json.loads(cli("plugins", "--json", env={"SERCLI_LOAD_PLUGINS": "fbank"}, check=True).stdout)
    assert [r["name"] for r in rows] == ["fbank"]


def test_root_help_is_quick_and_builtin_commands_skip_plugins():
    """A built-in command never loads plugins just to be found; only the command list does."""
    code = ("import sys; sys.argv = ['sercli', 'eval', '--help']\n"
            "from sercli import cli\nfrom sercli.core import plugins\n"
            "try:\n    cli.app()\nexcept SystemExit:\n    pass\n"
            "print(plugins._registry is None, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "True", proc.stderr


def test_prepare_help_lists_the_installed_corpora(cli):
    out = cli("prepare", "--help", check=True).stdout
    for corpus in ("emodb", "tess", "generic"):
        assert corpus in out
