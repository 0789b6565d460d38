"""Badly behaved third-party plugins, installed for real (a dist-info folder on PYTHONPATH, which
importlib.metadata finds as it finds a pip-installed distribution).

One bad plugin costs one line on stderr: never the CLI, never stdout, never a silent swap of
a built-in. `sercli plugins --json` stays valid JSON and shows each bad plugin's error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution named ``dist`` with ``[sercli]`` entry points and top-level modules."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[sercli]\n{lines}")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)


def sercli(site: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "SERCLI_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "sercli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def plugin_rows(site: Path) -> tuple[list[dict], str]:
    proc = sercli(site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def one_line_about(stderr: str, name: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(f"Warning: plugin '{name}' ")]
    assert len(lines) == 1, stderr
    return lines[0]


def gen_text_works(site: Path, *args) -> list[dict]:
    proc = sercli(site, "gen-text", "-e", "sad", "-n", "2", *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


HOOK = "from sercli.hookspecs import hookimpl\n"
CRASHES = {  # plugin name -> module source
    "exit0": "import sys\nsys.exit(0)\n",
    "exit3": "import sys\nsys.exit(3)\n",
    "ctrlc": "raise KeyboardInterrupt\n",
    "baseexc": "class Boom(BaseException):\n    pass\nraise Boom('at import')\n",
    "hookexit": HOOK + "@hookimpl\ndef register_backbones(register):\n    raise SystemExit(2)\n",
    "hookctrlc": HOOK + "@hookimpl\ndef register_strategies(register):\n    raise KeyboardInterrupt\n",
    "hookerror": HOOK + "@hookimpl\ndef register_corpora(register):\n    raise RuntimeError('no corpus today')\n",
}


def test_plugins_that_exit_or_raise_cost_one_line_each(tmp_path):
    for name, source in CRASHES.items():
        install(tmp_path, f"bad-{name}", {name: f"bad_{name}"}, {f"bad_{name}": source})
    rows, stderr = plugin_rows(tmp_path)
    by_name = {row["name"]: row for row in rows}
    for name in CRASHES:
        one_line_about(stderr, name)
        assert by_name[name]["error"], by_name[name]
        assert by_name[name]["registered"] == {}
    assert "sys.exit(3)" in by_name["exit3"]["error"] and "no corpus today" in by_name["hookerror"]["error"]
    assert by_name["fbank"]["error"] is None and by_name["template"]["error"] is None
    assert len(gen_text_works(tmp_path)) == 2


def test_printing_plugins_never_reach_stdout(tmp_path):
    install(tmp_path, "chatty", {"chatty": "chatty"}, {"chatty": HOOK + (
        "import ctypes, os, sys\n"
        "print('print at import')\n"
        "sys.__stdout__.write('sys.__stdout__ at import\\n')\n"
        "os.write(1, b'fd 1 at import\\n')\n"
        "ctypes.CDLL(None).printf(b'C printf at import\\n')\n"
        "@hookimpl\n"
        "def register_backbones(register):\n"
        "    print('print in a hook')\n"
        "    sys.stdout = open(os.devnull, 'w')\n"
    )})
    rows, stderr = plugin_rows(tmp_path)  # json.loads: stdout is exactly the JSON
    assert any(row["name"] == "chatty" and row["error"] is None for row in rows)
    for text in ("print at import", "sys.__stdout__ at import", "fd 1 at import", "C printf at import", "print in a hook"):
        assert text in stderr
    records = gen_text_works(tmp_path)  # every stdout line is a record, and the replaced sys.stdout is undone
    assert len(records) == 2


SHADOW = HOOK + '''
from sercli.base import Backbone, LLMBackend


class Hijack(LLMBackend):
    name = "template"

    def generate(self, emotion, n, *, seed, exclude):
        yield from ["HIJACKED"] * n


@hookimpl
def register_llm_backends(register):
    register(Hijack)
'''


def test_an_entry_point_with_a_builtins_name_is_ignored_and_reported(tmp_path):
    install(tmp_path, "shadowing", {"template": "shadow_template", "fbank": "shadow_fbank"},
            {"shadow_template": SHADOW, "shadow_fbank": "raise RuntimeError('never imported')\n"})
    rows, stderr = plugin_rows(tmp_path)
    for name in ("template", "fbank"):
        assert "built-in" in one_line_about(stderr, name)
        mine = [row for row in rows if row["name"] == name]
        assert [row["distribution"] for row in mine] == ["shadowing", "sercli"]
        assert mine[0]["error"] and mine[1]["error"] is None
    # {name: row} maps a name to the plugin in use
    assert {row["name"]: row for row in rows}["template"]["module"] == "sercli_template"
    texts = [r["text"] for r in gen_text_works(tmp_path)]
    assert "HIJACKED" not in texts


DUPLICATES = HOOK + '''
from sercli.base import Backbone, LLMBackend


class Echo(LLMBackend):
    name = "echo"

    def generate(self, emotion, n, *, seed, exclude):
        for i in range(n):
            yield f"{PREFIX} says {emotion} {i}"


class Nameless(LLMBackend):
    pass


@hookimpl
def register_llm_backends(register):
    register(Echo)
    register(Echo)             # the same name twice in one plugin
    register(Echo, name="template")  # a built-in's name
    register(Nameless)         # no name
    register(42, name="answer")      # not a class
    register(Backbone, name="wrong-family")  # not an LLM backend
'''


def test_duplicate_and_unusable_registrations_are_skipped_and_reported(tmp_path):
    install(tmp_path, "dup-one", {"dupone": "dup_one"}, {"dup_one": "PREFIX = 'one'\n" + DUPLICATES})
    install(tmp_path, "dup-two", {"duptwo": "dup_two"}, {"dup_two": "PREFIX = 'two'\n" + DUPLICATES})
    rows, stderr = plugin_rows(tmp_path)
    by_name = {row["name"]: row for row in rows}
    first, second = sorted(("dupone", "duptwo"), key=lambda n: stderr.index(f"'{n}'"))
    line = one_line_about(stderr, first)
    assert "'echo' twice" in line and "'template'" in line and "without a name" in line
    assert "not a class" in line and "sercli.base.LLMBackend" in line
    assert "'echo'" in one_line_about(stderr, second)
    assert by_name[first]["registered"] == {"llm": [{"name": "echo", "description": ""}]}
    assert by_name[second]["registered"] == {} and by_name[second]["error"]
    assert by_name["template"]["registered"]["llm"][0]["name"] == "template"
    assert sercli(tmp_path, "plugins").returncode == 0  # the table too
    assert not any(" says " in r["text"] for r in gen_text_works(tmp_path))  # the built-in template
    echoed = [r["text"] for r in gen_text_works(tmp_path, "-b", "echo")]
    assert echoed == [f"{first.removeprefix('dup')} says sad 0", f"{first.removeprefix('dup')} says sad 1"]


def test_load_plugins_keeps_builtins_first(tmp_path, name="template"):
    """With SERCLI_LOAD_PLUGINS naming a built-in, a third-party entry point of that name
    is still the one ignored."""
    install(tmp_path, "shadowing", {name: "shadow_mod"}, {"shadow_mod": SHADOW})
    env_proc = subprocess.run(
        [sys.executable, "-m", "sercli", "plugins", "--json"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "SERCLI_LOAD_PLUGINS": name}, timeout=120,
    )
    rows = json.loads(env_proc.stdout)
    assert [(r["name"], r["distribution"], r["error"] is None) for r in rows] == [
        (name, "shadowing", False), (name, "sercli", True)
    ]


LOUD_AT_USE = HOOK + '''
import atexit, ctypes, os, subprocess, sys, threading
from sercli.base import LLMBackend, TTSEngine

os.chdir("/")  # at import: -o out.jsonl must still mean the user's folder
atexit.register(lambda: print("print at exit"))


class Loud(LLMBackend):
    name = "loud"

    def generate(self, emotion, n, *, seed, exclude):
        for i in range(n):
            print("print while generating")
            os.write(1, b"fd 1 while generating\\n")
            subprocess.run(["echo", "a subprocess while generating"])
            yield f"This is {emotion} sentence number {i}."


class LoudTTS(TTSEngine):
    name = "loudtts"
    max_concurrency = 2

    def voices(self, emotion=None):
        return ["v1"]

    def synthesize(self, text, emotion, voice, path):
        import numpy as np
        from sercli.core.audio import write_wav

        print("print in a worker thread")
        t = threading.Thread(target=print, args=("print in a thread it started",))
        t.start()
        t.join()
        ctypes.CDLL(None).printf(b"C printf while synthesising\\n")
        os.chdir("/")  # at use time: the audio still lands in --audio-dir
        write_wav(path, np.zeros(1600, dtype="float32"), 16000)


@hookimpl
def register_llm_backends(register):
    register(Loud)


@hookimpl
def register_tts_engines(register):
    register(LoudTTS)
'''


def test_plugins_printing_or_changing_folder_while_used_never_reach_stdout(tmp_path):
    site = tmp_path / "site"
    install(site, "loud", {"loud": "loud_plugin"}, {"loud_plugin": LOUD_AT_USE})
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "SERCLI_QUIET": "1", "SERCLI_LOAD_PLUGINS": "loud"}

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "sercli", *map(str, args)], capture_output=True,
                              text=True, env=env, cwd=work, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc

    text = run("gen-text", "-b", "loud", "-e", "sad", "-n", "2")
    assert [json.loads(line)["emotion"] for line in text.stdout.splitlines()] == ["sad", "sad"]
    for said in ("print while generating", "fd 1 while generating", "a subprocess while generating", "print at exit"):
        assert said in text.stderr, said
    run("gen-text", "-b", "loud", "-e", "sad", "-n", "2", "-o", "text.jsonl")
    assert (work / "text.jsonl").is_file()  # not /text.jsonl
    speech = run("synthesize", "text.jsonl", "-t", "loudtts", "-d", "wav")
    records = [json.loads(line) for line in speech.stdout.splitlines()]
    assert len(records) == 2
    assert all(Path(r["audio"]).parent == (work / "wav").resolve() and Path(r["audio"]).is_file() for r in records)
    for said in ("print in a worker thread", "print in a thread it started", "C printf while synthesising"):
        assert said in speech.stderr, said


PREFIXED = HOOK + '''
from sercli.base import Backbone


class Fake(Backbone):
    name = "hf:facebook/wav2vec2-base"
    dim = 3


@hookimpl
def register_backbones(register):
    register(Fake)
'''


def test_a_name_under_a_builtins_prefix_is_not_taken_over(tmp_path):
    """`hf:` stands for every Hugging Face model: a plugin registering one such name exactly
    would silently replace the built-in for it."""
    install(tmp_path, "prefixed", {"prefixed": "prefixed_plugin"}, {"prefixed_plugin": PREFIXED})
    rows, stderr = plugin_rows(tmp_path)
    line = one_line_about(stderr, "prefixed")
    assert "'hf:facebook/wav2vec2-base'" in line and "'hf:'" in line and "built-in" in line
    row = {r["name"]: r for r in rows}["prefixed"]
    assert row["registered"] == {} and row["error"]
