"""Training and evaluation faults, through the CLI's error boundary: degenerate data refused in one
line, given partitions read as partitions, run folders written whole and never changed afterwards,
run-folder manifests that cannot point outside the run, and damaged files named.

Commands run in this process (``run_here``: the same stdout, stderr and exit code as
`python -m sercli`); a subprocess only where another process is the point (a train killed)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_here
from test_train_eval import make_corpus

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the corpus and runs) are made once, not once on each worker
pytestmark = pytest.mark.xdist_group("train_faults")

FAST = ["--epochs", "3", "--patience", "2", "--head", "mlp", "-O", "hidden=8", "--batch-size", "16"]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def refused(proc, *words: str) -> str:
    """One `Error:` line on stderr, a non-zero exit, no traceback; returns the line."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stderr
    assert lines and lines[-1].startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    real, synthetic = make_corpus(tmp_path_factory.mktemp("corpus"))
    return real, synthetic, read(real)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus):
    """A trained cross-validation run and a trained single run (copy them before changing them)."""
    real, _, _ = corpus
    root = tmp_path_factory.mktemp("runs")
    run_here("train", real, "--cv", "kfold:2", "--out", root / "cv", *FAST, check=True)
    run_here("train", real, "--test-speakers", "spk4", "--out", root / "single", *FAST, check=True)
    return root / "cv", root / "single"


# -- 4. degenerate training sets ----------------------------------------------------------------

def test_degenerate_training_sets_are_refused(tmp_path, corpus):
    _, _, recs = corpus
    one = write(tmp_path / "one.jsonl", [r for r in recs if r["emotion"] == "angry"])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "run"
    refused(run_here("train", one, "--test-speakers", "spk0", "--out", out, *FAST), "single emotion", "'angry'")
    refused(run_here("train", empty, "--out", out, *FAST), "empty.jsonl")
    real = write(tmp_path / "real.jsonl", recs)
    refused(run_here("train", real, "--classes", "angry,fear", "--out", out, *FAST), "--classes", "'fear'")
    refused(run_here("train", real, "--classes", "sad", "--out", out, *FAST), "single emotion")
    assert not out.exists()


def test_fold_whose_training_part_lacks_an_emotion_is_refused(tmp_path, corpus):
    _, _, recs = corpus
    # only spk0 says 'sad': leaving spk0 out trains a model that never heard 'sad'
    data = write(tmp_path / "d.jsonl", [r for r in recs if r["emotion"] != "sad" or r["speaker"] == "spk0"])
    line = refused(run_here("train", data, "--cv", "loso", "--out", tmp_path / "run", *FAST), "fold-00", "'sad'")
    assert "no training examples" in line and not (tmp_path / "run").exists()


def test_validation_part_with_one_emotion_is_refused(tmp_path, corpus):
    _, _, recs = corpus
    data = write(tmp_path / "d.jsonl", [r for r in recs if r["speaker"] != "spk1" or r["emotion"] == "angry"])
    refused(run_here("train", data, "--test-speakers", "spk0", "--val-speakers", "spk1", "--out", tmp_path / "run", *FAST),
            "validation", "only 'angry'")


def test_test_part_without_learnt_emotions_is_refused(tmp_path, corpus):
    _, _, recs = corpus
    train = write(tmp_path / "train.jsonl", [r for r in recs if r["speaker"] != "spk4"])
    other = write(tmp_path / "other.jsonl", [{**r, "emotion": "fear"} for r in recs if r["speaker"] == "spk4"])
    refused(run_here("train", train, "--test", other, "--out", tmp_path / "run", *FAST), "--test", "no records")


def test_test_speaker_without_an_emotion_is_warned_about(tmp_path, corpus):
    _, _, recs = corpus
    data = write(tmp_path / "d.jsonl", [r for r in recs if r["speaker"] != "spk4" or r["emotion"] != "sad"])
    out = tmp_path / "run"
    proc = run_here("train", data, "--test-speakers", "spk4", "--out", out, *FAST, check=True)
    assert "Warning:" in proc.stderr and "no 'sad'" in proc.stderr and "2 emotions only" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["jobs"][0]["classes_absent"] == ["sad"] and metrics["pooled"]["classes_absent"] == ["sad"]


# -- 5. given partitions -----------------------------------------------------------------------

def test_msp_podcast_partitions_train_on_train_only(tmp_path, corpus):
    _, _, recs = corpus
    names = {"spk0": "Train", "spk1": "Train", "spk2": "Development", "spk3": "Test1", "spk4": "Test2"}
    data = write(tmp_path / "msp.jsonl", [{**r, "split": names[r["speaker"]], "session": names[r["speaker"]]}
                                          for r in recs])
    out = tmp_path / "run"
    run_here("train", data, "--cv", "field:split", "--out", out, *FAST, check=True)
    manifest = json.loads((out / "run.json").read_text())
    assert [f["description"] for f in manifest["folds"]] == ["split=Test1", "split=Test2"]
    for job, tested in (("fold-00-seed-0", ["spk3"]), ("fold-01-seed-0", ["spk4"])):
        spk = json.loads((out / job / "config.json").read_text())["speakers"]
        assert spk == {"train": ["spk0", "spk1"], "val": ["spk2"], "test": tested}
    refused(run_here("train", data, "--cv", "loso-session", "--out", tmp_path / "x", *FAST), "test partitions")
    refused(run_here("train", data, "--cv", "field:speaker", "--out", tmp_path / "x", *FAST),
            "only with split names", "loo:speaker")


# -- 6. run folders: whole or nothing, and never changed afterwards ----------------------------

def test_eval_never_changes_the_run(tmp_path, corpus, runs):
    real, _, recs = corpus
    other = write(tmp_path / "other.jsonl", [r for r in recs if r["speaker"] == "spk4"])
    before = {run: snapshot(run) for run in runs}
    for run in runs:
        json.loads(run_here("eval", run, check=True).stdout)
        result = json.loads(run_here("eval", run, other, "--allow-speaker-overlap", check=True).stdout)
        assert result["pooled"]["n"] == result["n_jobs"] * len(read(other))
    run_here("eval", "--compare", *runs, check=True)
    assert {run: snapshot(run) for run in runs} == before

    cv, _ = runs
    out = tmp_path / "eval-other"
    printed = json.loads(run_here("eval", cv, other, "--allow-speaker-overlap", "--out", out, check=True).stdout)
    assert snapshot(cv) == before[cv]
    written = json.loads((out / "metrics.json").read_text())
    assert written["pooled"] == printed["pooled"] and written["pooled"]["n"] == 2 * len(read(other))
    assert len(read(out / "fold-00-seed-0" / "predictions.jsonl")) == len(read(other))
    refused(run_here("eval", cv, other, "--allow-speaker-overlap", "--out", out), "already exists", "--overwrite")
    refused(run_here("eval", cv, "--out", cv / "inside"), "outside")


def test_train_never_mixes_into_an_existing_run(tmp_path, corpus, runs):
    real, _, _ = corpus
    cv, _ = runs
    out = tmp_path / "run"
    shutil.copytree(cv, out)
    before = snapshot(out)
    refused(run_here("train", real, "--test-speakers", "spk1", "--out", out, *FAST), "already exists", "--overwrite")
    assert snapshot(out) == before
    run_here("train", real, "--test-speakers", "spk1", "--out", out, "--overwrite", *FAST, check=True)
    assert not (out / "run.json").exists() and not list(out.glob("fold-*"))  # nothing of the old run left
    assert json.loads((out / "config.json").read_text())["speakers"]["test"] == ["spk1"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run.") and not p.name.endswith(".lock")) == []
    notrun = tmp_path / "notes"
    notrun.mkdir()
    (notrun / "keep.txt").write_text("mine")
    refused(run_here("train", real, "--out", notrun, "--overwrite", *FAST), "not a sercli run folder")
    assert (notrun / "keep.txt").read_text() == "mine"


def test_concurrent_and_killed_trains(tmp_path, corpus):
    real, _, _ = corpus
    out = tmp_path / "run"
    slow = ["--cv", "loso", "--seeds", "0,1,2,3", "--epochs", "200", "--patience", "200", "--head", "mlp", "-O", "hidden=8"]
    first = subprocess.Popen([sys.executable, "-m", "sercli", "train", real, "--out", out, *slow],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob(".run.tmp-*")) and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None and list(tmp_path.glob(".run.tmp-*")), "the first train never started building"
        refused(run_here("train", real, "--out", out, "--overwrite", *FAST), "another sercli process")
        assert not out.exists()  # a run appears only when complete
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        first.stderr.close()
    assert not out.exists() and list(tmp_path.glob(".run.tmp-*"))  # killed: only its temporary remains
    run_here("train", real, "--test-speakers", "spk0", "--out", out, *FAST, check=True)
    assert (out / "metrics.json").exists() and not list(tmp_path.glob(".run.tmp-*"))



def test_no_command_writes_into_an_existing_run(tmp_path, corpus, runs):
    """--out inside a run (a new folder in it, or one of its jobs even with --overwrite), or
    inside an evaluation folder, is refused for train and eval alike; the run is unchanged."""
    real, _, _ = corpus
    cv, single = runs
    run = tmp_path / "run"
    shutil.copytree(cv, run)
    before = snapshot(run)
    refused(run_here("train", real, "--test-speakers", "spk0", "--out", run / "sub", *FAST), "inside the run folder")
    refused(run_here("train", real, "--test-speakers", "spk0", "--out", run / "fold-01-seed-0", "--overwrite", *FAST),
            "inside the run folder")
    refused(run_here("eval", single, "--out", run / "evaluation"), "inside the run folder")
    assert snapshot(run) == before and sorted(p.name for p in run.iterdir() if p.name.startswith("."))  == []
    evaluation = tmp_path / "evaluation"
    run_here("eval", single, "--out", evaluation, check=True)
    refused(run_here("eval", single, "--out", evaluation / "again"), "inside the run folder")
    # a folder of the user's that merely has a config.json is not mistaken for a run
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text("{}")
    run_here("train", real, "--test-speakers", "spk0", "--out", project / "runs" / "a", *FAST, check=True)


def test_a_link_is_never_replaced_or_read_as_a_run_file(tmp_path, corpus, runs):
    """sercli writes no symbolic links into a run: one there (to another run's model, to
    records outside, to another run's manifest) is refused, never followed; an --out that
    is a link is not replaced."""
    real, _, _ = corpus
    cv, single = runs
    for name, target in (("fold-00-seed-0/model.safetensors", single / "model.safetensors"),
                         ("fold-00-seed-0/config.json", single / "config.json"),
                         ("fold-00-seed-0/test.jsonl", real), ("run.json", cv / "run.json")):
        run = tmp_path / name.replace("/", "_")
        shutil.copytree(cv, run)
        (run / name).unlink()
        (run / name).symlink_to(target)
        line = refused(run_here("eval", run), "symbolic link", name.split("/")[-1])
        assert str(run) in line
        if name != "fold-00-seed-0/test.jsonl":
            refused(run_here("predict", run, real, "--ensemble"), "symbolic link")
    run = tmp_path / "linked-job"
    shutil.copytree(cv, run)
    shutil.rmtree(run / "fold-01-seed-0")
    (run / "fold-01-seed-0").symlink_to("fold-00-seed-0")  # inside the run, but another job's folder
    refused(run_here("eval", run), "symbolic link", "'fold-01-seed-0'")
    link = tmp_path / "link"
    link.symlink_to(single)
    before = snapshot(single)
    refused(run_here("train", real, "--test-speakers", "spk0", "--out", link, "--overwrite", *FAST), "symbolic link")
    assert snapshot(single) == before and link.is_symlink()


def test_sweep_values_that_read_the_same_are_refused(tmp_path, corpus):
    real, synthetic, _ = corpus
    proc = run_here("train", real, "--synthetic", synthetic, "--strategy", "mix", "--sweep", "ratio=0.5,.5",
                   "--test-speakers", "spk0", "--out", tmp_path / "sweep", *FAST)
    refused(proc, "ratio=0.5 and ratio=.5", "same setting")
    assert not (tmp_path / "sweep").exists()


def test_msp_podcast_unknown_speakers_in_train_and_test(tmp_path, corpus):
    """Records without a speaker in Train and in Test1 (as MSP-Podcast has them): the given
    partitions train and evaluate; known speakers are still checked."""
    _, _, recs = corpus
    names = {"spk0": "Train", "spk1": "Train", "spk2": "Development", "spk3": "Test1", "spk4": "Test2"}
    data = write(tmp_path / "msp.jsonl", [{**r, "split": names[r["speaker"]],
                                           "speaker": None if i % 3 == 0 else r["speaker"]}
                                          for i, r in enumerate(recs)])
    out = tmp_path / "run"
    proc = run_here("train", data, "--cv", "field:split", "--out", out, *FAST, check=True)
    assert "no speaker" in proc.stderr
    result = json.loads(run_here("eval", out, check=True).stdout)
    assert result["n_folds"] == 2

# -- 2. paths from run-folder files -------------------------------------------------------------

def test_run_files_cannot_name_paths_outside_the_run(tmp_path, corpus, runs):
    real, _, _ = corpus
    cv, _ = runs
    run = tmp_path / "run"
    shutil.copytree(cv, run)
    victim = tmp_path / "victim"
    shutil.copytree(cv / "fold-00-seed-0", victim)
    before = snapshot(victim)
    manifest = json.loads((run / "run.json").read_text())
    manifest["jobs"][0]["name"] = "../victim"
    (run / "run.json").write_text(json.dumps(manifest))
    refused(run_here("eval", run), "run.json", "'../victim'")
    refused(run_here("predict", run, real), "run.json", "'../victim'")
    assert snapshot(victim) == before

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"sweep": {}, "runs": ["../victim", "../run"]}))
    refused(run_here("eval", sweep), "sweep.json", "'../victim'")
    refused(run_here("eval", "--compare", cv, sweep), "sweep.json")
    assert snapshot(victim) == before
    (sweep / "sweep.json").write_text('{"sweep": {}, "runs": ["ratio=0.')  # torn
    refused(run_here("eval", sweep), "sweep.json", "damaged")


def test_sweep_values_never_become_paths(tmp_path, corpus):
    """A third-party strategy with a free-text option: its swept values name no folder outside."""
    real, _, _ = corpus
    plugin = tmp_path / "site"
    (plugin / "sercli_tagged").mkdir(parents=True)
    (plugin / "sercli_tagged" / "__init__.py").write_text(
        "from sercli.base import Options as BaseOptions\n"
        "from sercli.hookspecs import hookimpl\n"
        "from sercli_strategies.basic import RealOnly\n\n\n"
        "class Tagged(RealOnly):\n"
        "    name = 'tagged'\n\n"
        "    class Options(BaseOptions):\n"
        "        tag: str = 'x'\n\n\n"
        "@hookimpl\n"
        "def register_strategies(register):\n"
        "    register(Tagged)\n"
    )
    dist = plugin / "sercli_tagged-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sercli-tagged\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sercli]\ntagged = sercli_tagged\n")
    out = tmp_path / "runs" / "sweep"
    run_here("train", real, "--strategy", "tagged", "--sweep", "tag=a/../../../escape,plain", "--test-speakers", "spk0",
             "--out", out, *FAST, site=plugin, check=True)
    names = json.loads((out / "sweep.json").read_text())["runs"]
    assert names[1] == "tag=plain" and "/" not in names[0] and ".." not in names[0]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["sweep.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "site"]
    assert [p for p in tmp_path.rglob("*escape*") if out not in p.parents] == []


# -- damaged run files ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["run.json", "fold-01-seed-0/config.json", "fold-01-seed-0/model.safetensors"])
def test_truncated_run_files_are_named(tmp_path, runs, name):
    cv, _ = runs
    run = tmp_path / "run"
    shutil.copytree(cv, run)
    path = run / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(run_here("eval", run), str(Path(name)), "damaged")


def test_truncated_single_run_config_is_named_by_predict(tmp_path, corpus, runs):
    real, _, _ = corpus
    _, single = runs
    run = tmp_path / "run"
    shutil.copytree(single, run)
    (run / "config.json").write_text((single / "config.json").read_text()[:40])
    refused(run_here("predict", run, real), "config.json", "damaged")
