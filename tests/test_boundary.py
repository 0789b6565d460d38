"""The plugin boundary (issue 24): what sercli checks of what a plugin returns, and what a
failing plugin costs. Each bad plugin is installed for real (a dist-info folder on PYTHONPATH)
and used through the real CLI: one line on stderr naming the plugin, never a silent wrong result,
never a finished run lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_here
from test_plugin_faults import install
from test_train_eval import make_corpus

QUICK = ["--epochs", "3", "--patience", "2", "--batch-size", "16"]
HOOK = "from sercli.hookspecs import hookimpl\n"


def sercli(*args, site: Path | None = None, process: bool = False) -> subprocess.CompletedProcess:
    """The CLI with ``site``'s test plugins installed ahead of this tree's: in this process
    (``run_here``), or with ``process`` (and for extraction's worker processes, which import the
    plugin) in a subprocess, ``site`` ahead on its PYTHONPATH."""
    if not process:
        return run_here(*args, site=site)
    path = os.pathsep.join(filter(None, [str(site) if site else None, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "SERCLI_QUIET": ""}
    return subprocess.run([sys.executable, "-m", "sercli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def plugin(site: Path, dist: str, module: str, source: str) -> Path:
    install(site, dist, {dist: module}, {module: HOOK + source})
    return site


# -- 1. trackers: after the run folder is final, never at the cost of the run ------------------

RECORDER = """
import json
from pathlib import Path
from sercli.api import Tracker

class Recorder(Tracker):
    name = "recorder"
    description = "writes where it was sent and the figures it was given"
    def start(self, where, name, params):
        self.where, self.rows = Path(where), [{"where": str(where), "name": name}]
    def scalar(self, tag, value, step=0):
        pass
    def figure(self, tag, png):
        self.rows.append({"figure": str(png), "exists": Path(png).is_file()})
    def finish(self):
        self.where.mkdir(parents=True, exist_ok=True)
        (self.where / "seen.json").write_text(json.dumps(self.rows))

@hookimpl
def register_trackers(register):
    register(Recorder)
"""


def test_a_tracker_is_given_the_final_run_folder(tmp_path, corpus):
    real, _ = corpus
    site = plugin(tmp_path / "site", "rec-tracker", "rec_tracker", RECORDER)
    run = tmp_path / "run"
    proc = sercli("train", real, "--test-speakers", "spk3,spk4", "--tracker", "recorder", "--out", run, *QUICK,
                  site=site)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads((run / "recorder" / "seen.json").read_text())
    assert Path(seen[0]["where"]) == (run / "recorder").absolute()
    figures = [row for row in seen[1:] if "figure" in row]
    assert figures and all(Path(r["figure"]).parent == run.absolute() for r in figures)
    assert all(Path(r["figure"]).is_file() for r in figures)  # still there: the paths of the final folder


def test_a_failing_tracker_keeps_the_run_and_track_retries(tmp_path, corpus):
    pytest.importorskip("tensorboard")
    real, _ = corpus
    taken = tmp_path / "taken"
    taken.write_text("a file where the event files would go")
    run = tmp_path / "run"
    proc = sercli("train", real, "--test-speakers", "spk3,spk4", "--tracker", "tensorboard",
                  "-O", f"tracker.logdir={taken}", "--out", run, *QUICK)
    warning = [line for line in proc.stderr.splitlines() if line.startswith("Warning: tracker 'tensorboard'")]
    assert len(warning) == 1 and "plugin 'trackers'" in warning[0], proc.stderr
    assert "sercli track" in error_line(proc)  # exit 1: part of the command failed, and what to run
    assert (run / "model.safetensors").is_file() and (run / "metrics.json").is_file()  # the run stays whole
    assert not list(tmp_path.glob(".run.tmp-*"))  # no build folder left behind
    again = sercli("track", run, "--tracker", "tensorboard", "--out", tmp_path / "tb")
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / "tb" / "run").glob("events.out.tfevents.*"))


def test_tracker_places_inside_another_run_are_refused_before_any_work(tmp_path, corpus):
    pytest.importorskip("tensorboard")
    real, _ = corpus
    other = tmp_path / "other"
    assert sercli("train", real, "--test-speakers", "spk3,spk4", "--out", other, *QUICK).returncode == 0
    before = sorted(p.name for p in other.iterdir())
    new = tmp_path / "new"
    proc = sercli("train", real, "--test-speakers", "spk3,spk4", "--tracker", "tensorboard",
                  "-O", f"tracker.logdir={other / 'tb'}", "--out", new, *QUICK)
    assert "inside the run folder" in error_line(proc) and "logdir" in error_line(proc)
    assert "validation UA" not in proc.stderr and not new.exists()  # refused before training
    proc = sercli("track", other, "--tracker", "tensorboard", "--out", tmp_path / "tb")  # a run to track
    assert proc.returncode == 0, proc.stderr
    third = tmp_path / "third"
    shutil.copytree(other, third)  # a second run
    proc = sercli("track", third, "--tracker", "tensorboard", "--out", other)  # would write other/third
    assert "inside the run folder" in error_line(proc)
    assert sorted(p.name for p in other.iterdir()) == before


# -- 2. backbones: num_frames is what forward returns ---------------------------------------

SHORT_BACKBONE = """
from sercli.api import Backbone

class Short(Backbone):
    name = "short"
    description = "declares n // 160 frames, returns one fewer"
    hop_samples = 160
    def num_frames(self, n):
        return n // 160
    def forward(self, wavs, device="cpu"):
        import torch
        return [torch.ones(1, max(len(w) // 160 - 1, 1), 4) for w in wavs]

@hookimpl
def register_backbones(register):
    register(Short)
"""


def test_a_num_frames_mismatch_is_one_line_naming_the_plugin(tmp_path):
    from conftest import write_tone

    site = plugin(tmp_path / "site", "short-backbone", "short_backbone", SHORT_BACKBONE)
    records = tmp_path / "audio.jsonl"
    rows = [{"id": f"u{i}", "audio": str(write_tone(tmp_path / f"u{i}.wav", seconds=0.5 + 0.1 * i))} for i in range(3)]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "feats.jsonl"
    proc = sercli("extract", records, "--backbone", "short", "--store", tmp_path / "store", "-o", out, site=site,
                  process=True)
    line = error_line(proc)
    assert "backbone 'short'" in line and "plugin 'short-backbone'" in line and "num_frames" in line
    assert not out.exists() or not out.read_text().strip()  # nothing stored with frames cut


# -- 3. gates: every verdict checked ----------------------------------------------------------

BARE_OK_GATE = """
from sercli.api import Gate

class Ok(Gate):
    name = "ok"
    description = "says 'ok' instead of (None, scores)"
    def judge(self, records):
        return ["ok" for _ in records]

@hookimpl
def register_gates(register):
    register(Ok)
"""


def test_a_malformed_gate_verdict_is_one_line_naming_the_plugin(tmp_path):
    site = plugin(tmp_path / "site", "ok-gate", "ok_gate", BARE_OK_GATE)
    records = tmp_path / "in.jsonl"
    records.write_text('{"id": "a"}\n{"id": "b"}\n')
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    proc = sercli("filter", records, "-g", "ok", "--dropped", dropped, "-o", kept, site=site, process=True)
    line = error_line(proc)
    assert "gate 'ok'" in line and "plugin 'ok-gate'" in line and "'ok'" in line
    for path in (kept, dropped):  # nothing judged by a verdict that means nothing
        assert not path.exists() or not path.read_text().strip()


# -- 5. strategies: fit returns the trained model -----------------------------------------------

BAD_STRATEGY = """
from sercli.api import Strategy

class Forgetful(Strategy):
    name = "forgetful"
    description = "trains, then returns the trainer's history instead of the model"
    def fit(self, trainer, real, synthetic, val):
        trainer.fit(trainer.new_model(real), real, val)
        return trainer.history

@hookimpl
def register_strategies(register):
    register(Forgetful)
"""


def test_a_strategy_returning_the_wrong_type_is_named(tmp_path, corpus):
    real, _ = corpus
    site = plugin(tmp_path / "site", "bad-strategy", "bad_strategy", BAD_STRATEGY)
    proc = sercli("train", real, "--test-speakers", "spk3,spk4", "--strategy", "forgetful", "--out",
                  tmp_path / "run", *QUICK, site=site)
    line = error_line(proc)
    assert "strategy 'forgetful'" in line and "plugin 'bad-strategy'" in line and "History" in line
    assert not (tmp_path / "run").exists()


# -- 6. plugin versions in every job and in a CV run's run.json ---------------------------------

def test_every_job_and_cv_run_records_its_plugins_versions(tmp_path, corpus):
    pytest.importorskip("tensorboard")
    from sercli.core.plugins import registry

    real, synthetic = corpus
    run = tmp_path / "cv"
    proc = sercli("train", real, "--synthetic", synthetic, "--cv", "kfold:2", "--strategy", "mix", "--head", "mlp",
                  "--tracker", "tensorboard", "--out", run, *QUICK)
    assert proc.returncode == 0, proc.stderr
    reg = registry()
    want = {name: reg.infos[name].version for name in ("strategies", "heads", "trackers")}
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["plugins"] == want
    for job in manifest["jobs"]:
        assert json.loads((run / job["name"] / "config.json").read_text())["plugins"] == want


# -- 7. an output that reads as an option ---------------------------------------------------------

def test_every_output_option_refuses_a_key_value_path(tmp_path, monkeypatch, capsys):
    """Every command's output options (built-in, nested, a plugin's), found by walking the CLI."""
    import typer

    from sercli import cli
    from sercli.core.options import OUTPUT_OPTIONS

    monkeypatch.chdir(tmp_path)
    command = typer.main.get_command(cli.app)
    found = []

    def walk(cmd, path):
        for param in cmd.params:
            opts = [o for o in getattr(param, "opts", []) if o in OUTPUT_OPTIONS]
            if opts and param.param_type_name == "option":
                found.append((path, opts[0]))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, path + [name])

    walk(command, [])
    assert {("gen-text", "--output"), ("train", "--out"), ("extract", "--store"), ("synthesize", "--audio-dir"),
            ("filter", "--dropped"), ("eval", "--html"), ("track", "--out")} <= {(p[0], o) for p, o in found}
    for path, option in found:
        assert cli._run([*path, option, "n_mels=40"], debug=False) == 1, (path, option)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"Error: {option} n_mels=40") and "-O n_mels=40" in err[0], err
    assert not list(tmp_path.iterdir())  # nothing written anywhere


def test_a_key_value_output_is_refused_and_a_deliberate_one_is_not(tmp_path, cli):
    proc = cli("gen-text", "-e", "sad", "-n", "1", "-o", "n_mels=40", cwd=tmp_path)
    assert "-O n_mels=40" in error_line(proc) and not (tmp_path / "n_mels=40").exists()
    proc = cli("gen-text", "-e", "sad", "-n", "1", "-o", "./n_mels=40", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "n_mels=40").read_text().strip()


# -- 8. the progress line: synthetic utterances used, of those available ---------------------------

def test_the_job_line_reports_the_synthetic_utterances_used(tmp_path, corpus):
    real, synthetic = corpus
    run = tmp_path / "run"
    proc = sercli("train", real, "--synthetic", synthetic, "--strategy", "mix", "-O", "ratio=0.2",
                  "--test-speakers", "spk3,spk4", "--out", run, *QUICK)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads((run / "config.json").read_text())["counts"]
    used, available = counts["synthetic_used"], counts["synthetic"]
    assert 0 < used < available  # the line below then tells them apart
    line = next(line for line in proc.stderr.splitlines() if "validation UA" in line)
    assert re.search(rf"\b{counts['train']} real \+ {used} of {available} synthetic\b", line), line


# -- 4. the contract documents every public object with its signature and fields ---------------

def _signature(fn) -> str:
    import inspect

    parts, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return f"{fn.__name__}({', '.join(parts)})"


def test_the_api_documents_each_helper_with_its_signature():
    import sercli.api as api

    doc = " ".join(api.__doc__.split())
    for name in ("write_wav", "load_audio", "resample", "safe_name", "atomic_write_bytes", "atomic_write_text",
                 "atomic_path", "backoff_delay", "wait_before_retry", "need_synthetic", "sample_synthetic",
                 "run_probabilities", "read_features"):
        assert f"``{_signature(getattr(api, name))}" in doc, _signature(getattr(api, name))


def test_the_learning_contract_documents_every_field_and_method():
    import dataclasses
    import inspect

    import sercli.api as api
    from sercli.contract import learning
    from sercli.learning.train import TrainConfig, Trainer

    doc = " ".join(learning.__doc__.split())
    for cls in (api.Examples, api.FitHooks):
        fields = dataclasses.fields(cls)
        shown = [f.name if f.default is dataclasses.MISSING else f"{f.name}={f.default!r}" for f in fields]
        assert f"``{cls.__name__}({', '.join(shown)})``" in doc, cls
        for f in fields:
            assert f"``{f.name}" in doc, (cls.__name__, f.name)
    for name, member in vars(api.Examples).items():
        if not name.startswith("_") and (callable(member) or isinstance(member, classmethod)):
            assert f"``{name}(" in doc, name
    assert "``HeadModule(num_layers, dim, num_classes)``" in doc
    head = api.HeadModule(2, 3, 4)
    public = {n for n in dir(type(head)) if not n.startswith("_") and n in vars(api.HeadModule)}
    public |= {"config", "mean", "std", "embed_dim", "classifier"}
    for name in public:
        member = getattr(type(head), name, None)
        call = _signature(member).replace("self, ", "").replace("(self)", "()") if callable(member) else None
        assert (call and f"``{call}" in doc) or f"``{name}" in doc, (name, call)
    for field in dataclasses.fields(TrainConfig):
        assert f"``{field.name}``" in doc, field.name
    for name in ("new_model", "fit", "predict", "evaluate", "note_used"):  # the protocol is the trainer's
        real = inspect.signature(getattr(Trainer, name))
        documented = inspect.signature(getattr(learning.TrainerAPI, name))
        assert list(real.parameters) == list(documented.parameters), name
        assert getattr(learning.TrainerAPI, name).__doc__, name


# -- the example plugin's gate and tracker, run through the CLI --------------------------------

from test_example_plugin import sercli as example_sercli, site  # noqa: E402,F401  (a fixture: the example, pip-installed)


def test_the_example_gate_and_tracker_through_the_cli(site, tmp_path, corpus):  # noqa: F811
    records = tmp_path / "audio.jsonl"
    rows = [{"id": "short", "duration": 0.2}, {"id": "fine", "duration": 1.0}, {"id": "long", "duration": 30.0}]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    example_sercli(site, "filter", records, "-g", "duration", "--dropped", dropped, "-o", kept, here=True)
    assert [json.loads(line)["id"] for line in kept.read_text().splitlines()] == ["fine"]
    gone = {r["id"]: r for r in map(json.loads, dropped.read_text().splitlines())}
    assert set(gone) == {"short", "long"} and gone["short"]["filter_reason"].startswith("duration: 0.20 s < 0.5")
    assert gone["long"]["provenance"]["filter"]["duration"]["scores"] == {"seconds": 30.0}
    wide = tmp_path / "wide.jsonl"
    example_sercli(site, "filter", records, "-g", "duration", "-O", "max_seconds=40", "--dropped",
                   tmp_path / "d2.jsonl", "-o", wide, here=True)
    assert [json.loads(line)["id"] for line in wide.read_text().splitlines()] == ["fine", "long"]

    real, _ = corpus
    run = tmp_path / "run"
    example_sercli(site, "train", real, "--test-speakers", "spk3,spk4", "--tracker", "jsonl-log", "--out", run, *QUICK,
                   here=True)
    logged = [json.loads(line) for line in (run / "jsonl-log" / "scalars.jsonl").read_text().splitlines()]
    assert logged[0]["run"] == "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["value"] for r in logged if r.get("tag") == "test/UA"] == [metrics["jobs"][0]["UA"]]
    figures = [Path(r["figure"]) for r in logged if "figure" in r]
    assert figures and all(p.is_file() and run.absolute() in p.parents for p in figures)
