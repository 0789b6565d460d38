"""`sercli filter` and its quality gates on real parts: espeak audio judged by the offline Whisper
tiny.en (asr), feature records judged by a run trained in the test (emotion), resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import run_here
from sercli.core import plugins as pl
from sercli.cli import app
from sercli.core.errors import SercliError
from sercli.features.store import FeatureStore

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the gates' models and corpus) are made once, not once on each worker
pytestmark = pytest.mark.xdist_group("filter")

SPOKEN = [  # (id, what espeak says, the text the record claims)
    ("clear", "Could you pick up the kids from school at three tomorrow?",
     "Could you pick up the kids from school at three tomorrow?"),
    ("clear2", "The weather will be sunny and warm this weekend.",
     "The weather will be sunny and warm this weekend."),
    ("mismatch", "I left my umbrella on the train this morning.",
     "Our neighbour finally painted the old garden fence green."),
]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def invoke(*args):
    """The command in this process; a SercliError comes out as itself (the CLI prints it)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


# -- asr ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """Real espeak audio of each sentence, with records claiming SPOKEN's texts."""
    from sercli_espeak.engine import EspeakEngine

    folder = tmp_path_factory.mktemp("asr")
    tts = EspeakEngine()
    records = []
    for rid, said, claimed in SPOKEN:
        path = folder / f"{rid}.wav"
        tts.synthesize(said, "neutral", "en-us", path)
        records.append({"id": rid, "emotion": "neutral", "text": claimed, "audio": str(path),
                        "language": "en", "source": "synthetic"})
    return folder, records


def test_asr_gate_keeps_clear_speech_and_drops_a_text_that_does_not_match(spoken, tmp_path):
    _, records = spoken
    source = write(tmp_path / "in.jsonl", records)
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    proc = run_here("filter", source, "-g", "asr", "-o", kept, "--dropped", dropped)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read(kept)] == ["clear", "clear2"]
    [bad] = read(dropped)
    assert bad["id"] == "mismatch" and bad["filter_gate"] == "asr"
    assert bad["filter_reason"].startswith("asr: WER ") and "max_wer" in bad["filter_reason"]
    for rec in read(kept):
        scores = rec["provenance"]["filter"]["asr"]["scores"]
        assert scores["wer"] <= rec["provenance"]["filter"]["asr"]["options"]["max_wer"]
        assert scores["transcript"]  # what Whisper heard is kept
    assert bad["provenance"]["filter"]["asr"]["scores"]["wer"] > 0.5
    assert "2 kept, 1 dropped (asr: 1)" in proc.stderr

    # resume: nothing judged again. The audio of a judged record is gone, and would fail if it were.
    Path(records[0]["audio"]).rename(tmp_path / "moved.wav")
    try:
        again = run_here("filter", source, "-g", "asr", "-o", kept, "--dropped", dropped)
    finally:
        (tmp_path / "moved.wav").rename(records[0]["audio"])
    assert again.returncode == 0, again.stderr
    assert "3 judged before" in again.stderr
    assert [r["id"] for r in read(kept)] == ["clear", "clear2"] and len(read(dropped)) == 1

    # other options: refused instead of mixing two settings in one file
    other = run_here("filter", source, "-g", "asr", "-O", "max_wer=0.9", "-o", kept, "--dropped", dropped)
    assert other.returncode == 1 and "other options" in other.stderr


def test_asr_gate_threshold_decides(spoken):
    gate = pl.create("gate", "asr", {"max_wer": "0"})
    _, records = spoken
    gate.check(records)
    gate.load("cpu")
    (reason, scores), = gate.judge([records[2]])
    assert reason and scores["wer"] > 0
    loose = pl.create("gate", "asr", {"max_wer": str(scores["wer"])})
    loose._loaded, loose._device = gate._loaded, "cpu"
    (reason, _), = loose.judge([records[2]])
    assert reason is None  # at the threshold: kept


def test_asr_gate_refuses_other_languages_for_the_english_model(spoken):
    _, records = spoken
    gate = pl.create("gate", "asr", {"model": "whisper-tiny.en"})
    with pytest.raises(SercliError, match=r"English only.*\bde\b.*model=whisper-base"):
        gate.check([{**records[0], "language": "de"}])


def test_word_error_rate_normalises_text():
    from sercli_gates.asr import word_error_rate

    assert word_error_rate("It's half past three, Mr. Smith!", "it is half past 3 mister smith") == 0
    assert word_error_rate("the cat sat down", "the cat down") == pytest.approx(0.25)  # one deletion in four
    assert word_error_rate("Ich fasse es nicht!", "ich fasse es nicht", "de") == 0
    assert word_error_rate("...", "anything") is None


# -- emotion ------------------------------------------------------------------------------------

CLASSES = ("angry", "happy", "sad")


def feature_records(root: Path, seed: int = 0):
    """Real records (5 speakers x 3 classes, well apart) and synthetic ones: half placed at their
    labelled class, half labelled one class but placed at another's."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(root / "store")
    store.init({"backbone": {"plugin": "toy", "options": {}}, "layers": "all", "layer_names": ["0"],
                "pool": "none", "level": "frame", "dtype": "float32", "sample_rate": 16000})
    centers = rng.normal(size=(len(CLASSES), 8)) * 4

    def add(writer, key, at, label, **fields):
        x = (centers[at] + 0.5 * rng.normal(size=(5, 8))).astype(np.float32)[None]
        writer.add(key, x)
        return {"id": key, "emotion": CLASSES[label], "duration": 0.05,
                "features": {"store": str(store.root.resolve()), "key": key, "shape": list(x.shape)}, **fields}

    real, good, bad = [], [], []
    with store.writer() as w:
        for s in range(5):
            for c in range(len(CLASSES)):
                for k in range(4):
                    real.append(add(w, f"s{s}-{c}-{k}", c, c, speaker=f"spk{s}", source="real"))
        for i in range(6):
            c = i % len(CLASSES)
            good.append(add(w, f"good{i}", c, c, speaker="voice", text=f"line {i}", source="synthetic"))
            bad.append(add(w, f"bad{i}", (c + 1) % len(CLASSES), c, speaker="voice", text=f"line b{i}",
                           source="synthetic"))
    return real, good, bad


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotion")
    real, good, bad = feature_records(root)
    run = root / "run"
    invoke("train", write(root / "real.jsonl", real), "--out", run, "--test-speakers", "spk4",
           "--epochs", "30", "--patience", "10", "--head", "mlp", "-O", "hidden=16", "--batch-size", "16", "--norm", "none")
    return root, run, good, bad


def test_emotion_gate_keeps_recognised_and_drops_others(trained):
    root, run, good, bad = trained
    mixed = [r for pair in zip(good, bad) for r in pair]
    source = write(root / "synthetic.jsonl", mixed)
    kept, dropped = root / "kept.jsonl", root / "dropped.jsonl"
    invoke("filter", source, "-g", "emotion", "-O", f"run={run}", "-o", kept, "--dropped", dropped)
    assert [r["id"] for r in read(kept)] == [r["id"] for r in good]
    out = read(dropped)
    assert [r["id"] for r in out] == [r["id"] for r in bad]
    for rec in out:
        assert rec["filter_reason"].startswith("emotion: rank ") and "the run hears" in rec["filter_reason"]
        scores = rec["provenance"]["filter"]["emotion"]["scores"]
        assert scores["rank"] > 1 and scores["predicted"] != rec["emotion"]
    for rec in read(kept):
        assert rec["provenance"]["filter"]["emotion"]["scores"]["predicted"] == rec["emotion"]


def test_emotion_gate_probability_threshold_and_unknown_emotions(trained):
    from sercli.api import run_probabilities

    root, run, good, bad = trained
    labels, probs = run_probabilities(run, good + bad)
    p_bad = [float(row[labels.index(r["emotion"])]) for r, row in zip(good + bad, probs)][len(good):]
    gate = pl.create("gate", "emotion", {"run": str(run), "min_prob": str(max(p_bad) + 1e-4)})
    verdicts = gate.judge(good + bad)
    assert all(reason is None for reason, _ in verdicts[: len(good)])
    assert all(reason and "min_prob" in reason for reason, _ in verdicts[len(good):])
    (reason, _), = gate.judge([{**good[0], "emotion": "fear"}])
    assert "does not know emotion 'fear'" in reason


def test_emotion_gate_needs_features_and_a_run(trained, tmp_path):
    root, run, good, _ = trained
    no_features = write(tmp_path / "texts.jsonl", [{k: v for k, v in good[0].items() if k != "features"}])
    with pytest.raises(SercliError, match="has none: run `sercli extract`"):
        invoke("filter", no_features, "-g", "emotion", "-O", f"run={run}", "--dropped", tmp_path / "d.jsonl")
    with pytest.raises(SercliError, match="is not a folder"):
        invoke("filter", write(tmp_path / "g.jsonl", good), "-g", "emotion", "-O", f"run={tmp_path / 'nope'}",
               "--dropped", tmp_path / "d.jsonl")
    assert not (tmp_path / "d.jsonl").exists()  # refused before any file was made


def test_two_gates_need_named_options(tmp_path):
    with pytest.raises(SercliError, match=r"name the gate: -O asr\.max_wer=0\.2"):
        invoke("filter", write(tmp_path / "x.jsonl", [{"id": "a"}]), "-g", "asr", "-g", "emotion",
               "-O", "max_wer=0.2", "--dropped", tmp_path / "d.jsonl")
