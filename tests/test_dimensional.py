"""Dimensional targets (`train --target arousal,valence`): Lin's CCC (not Pearson's r), the CCC
loss, the whole path prepare -> extract (fbank) -> train --target -> eval -> predict on miniature
MSP-Podcast and IEMOCAP layouts, the protocols, strategies and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_here, write_tone
from test_train_eval import make_corpus

QUICK = ["--epochs", "30", "--patience", "30", "--lr", "0.03", "--batch-size", "16"]
AROUSAL = {"angry": 1.0, "happy": 0.8, "sad": 0.0}


# -- the metric -------------------------------------------------------------------------------

def test_ccc_is_lins_concordance_not_pearson():
    from sercli.core.metrics import ccc, pearson, regression_metrics

    truth = np.array([1.0, 2.0, 3.0])
    pred = 2 * truth + 1  # a perfect straight line that is not the truth: r = 1, CCC far below
    assert pearson(truth, pred) == pytest.approx(1.0)
    # by hand, population moments: means 2 and 5, variances 2/3 and 8/3, covariance 4/3:
    # CCC = 2 (4/3) / (2/3 + 8/3 + (2 - 5)^2) = 8/37
    assert ccc(truth, pred) == pytest.approx(8 / 37)
    assert ccc(truth, truth) == pytest.approx(1.0) and ccc(truth, truth[::-1]) == pytest.approx(-1.0)
    m = regression_metrics(np.c_[truth, truth], np.c_[pred, truth], ["arousal", "valence"])
    assert m["CCC_arousal"] == pytest.approx(8 / 37) and m["r_arousal"] == pytest.approx(1.0)
    assert m["RMSE_arousal"] == pytest.approx(np.sqrt(np.mean((truth + 1) ** 2)))
    assert m["CCC"] == pytest.approx((8 / 37 + 1) / 2)


def test_the_ccc_loss_is_one_minus_ccc_per_dimension():
    import torch

    from sercli.core.metrics import ccc
    from sercli.learning.targets import ccc_loss

    rng = np.random.default_rng(0)
    t, p = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    want = 1 - (ccc(t[:, 0], p[:, 0]) + ccc(t[:, 1], p[:, 1])) / 2
    assert float(ccc_loss(torch.tensor(p), torch.tensor(t))) == pytest.approx(want, abs=1e-6)


# -- miniature corpora with dimensions ------------------------------------------------------------

def _tone(path: Path, arousal: float) -> None:
    """A tone whose pitch says the arousal (0..1), so that the filterbank features can learn it."""
    write_tone(path, 0.3, freq=150 + 500 * arousal)


def make_msp(root: Path) -> Path:
    rng = np.random.default_rng(1)
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    n = 0
    for split, speakers in (("Train", ("11", "12", "13")), ("Development", ("21",)), ("Test1", ("31", "32"))):
        for spk in speakers:
            for k in range(8):
                a = float(rng.uniform())
                name = f"MSP-PODCAST_{int(spk):04d}_{k:04d}.wav"
                act = 1 + 6 * a  # MSP-Podcast's 1..7 scale
                row = [name, "AHSN"[k % 4], f"{act:.2f}", f"{7 - act:.2f}", f"{(act + 4) / 2:.2f}", spk,
                       "Female" if int(spk) % 2 else "Male", split]
                if n == 3:
                    row[2] = ""  # an unrated segment: no arousal
                lines.append(",".join(row))
                _tone(root / "Audios" / name, a)
                n += 1
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    return root


def make_iemocap(root: Path) -> Path:
    rng = np.random.default_rng(2)
    for s in (1, 2):
        dialog = f"Ses0{s}F_impro01"
        evaluation = []
        for k in range(12):
            turn = f"{dialog}_{'FM'[k % 2]}{k:03d}"
            a = float(rng.uniform())
            v, act, d = 1 + 4 * (1 - a), 1 + 4 * a, 3.0
            evaluation += [f"[{k:.4f} - {k + 0.3:.4f}]\t{turn}\t{['ang', 'sad', 'neu', 'hap'][k % 4]}\t"
                           f"[{v:.4f}, {act:.4f}, {d:.4f}]", ""]
            _tone(root / f"Session{s}" / "sentences" / "wav" / dialog / f"{turn}.wav", a)
        folder = root / f"Session{s}" / "dialog" / "EmoEvaluation"
        folder.mkdir(parents=True)
        (folder / f"{dialog}.txt").write_text("\n".join(evaluation) + "\n")
    return root


def _features(tmp: Path, corpus: str, root: Path) -> Path:
    manifest, feats = tmp / f"{corpus}.jsonl", tmp / f"{corpus}-f.jsonl"
    run_here("prepare", corpus, root, "--classes", "all", "-o", manifest, check=True)
    run_here("extract", manifest, "-b", "fbank", "-s", tmp / "store", "-o", feats, check=True)
    return feats


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_msp_podcast_whole_path(tmp_path, one_torch_thread):
    feats = _features(tmp_path, "msp-podcast", make_msp(tmp_path / "MSP-PODCAST"))
    run = tmp_path / "run"
    proc = run_here("train", feats, "--target", "arousal,valence,dominance", "--cv", "field:split", "--head", "mlp",
                    "-O", "hidden=16", "--out", run, *QUICK)
    assert proc.returncode == 0, proc.stderr
    assert "training records: skipped 1 of 48 records without a target value: arousal (1)" in proc.stderr
    config = json.loads((run / "fold-00-seed-0" / "config.json").read_text())  # Test1: one fold
    assert config["targets"] == ["arousal", "valence", "dominance"] and config["labels"] == []
    assert config["head"]["num_classes"] == 3 and len(config["head"]["target_mean"]) == 3
    proc = run_here("eval", run, check=True)
    agg = json.loads(proc.stdout)
    assert agg["targets"] == ["arousal", "valence", "dominance"]
    for t in agg["targets"]:
        assert {f"CCC_{t}", f"r_{t}", f"RMSE_{t}"} <= set(agg) and len(agg[f"CCC_{t}"]["ci95"]) == 2
    assert agg["CCC"]["mean"] > 0.5, agg["CCC"]  # pitch says the arousal: an easy task
    predictions = {p["id"]: p for p in _lines(run / "fold-00-seed-0" / "predictions.jsonl")}
    proc = run_here("predict", run, feats, check=True)
    for rec in map(json.loads, proc.stdout.splitlines()):
        assert set(rec["values"]) == {"arousal", "valence", "dominance"} and "probabilities" not in rec
        if rec["id"] in predictions:  # the test part: predict gives what eval scored
            assert rec["values"] == pytest.approx(predictions[rec["id"]]["values"], abs=1e-5)


def test_iemocap_whole_path_loso_session_seeds_and_reports(tmp_path, one_torch_thread):
    feats = _features(tmp_path, "iemocap", make_iemocap(tmp_path / "IEMOCAP"))
    linear, mlp = tmp_path / "linear", tmp_path / "mlp"
    for run, more in ((linear, ["--head", "linear", "--seeds", "0,1"]), (mlp, ["--head", "mlp", "-O", "hidden=16"])):
        run_here("train", feats, "--target", "arousal,valence", "--cv", "loso-session", "--out", run, *more, *QUICK,
                 check=True)
    run_json = json.loads((linear / "run.json").read_text())
    assert run_json["targets"] == ["arousal", "valence"] and len(run_json["jobs"]) == 4
    assert json.loads((linear / "fold-00-seed-0" / "config.json").read_text())["train"]["norm"] == "speaker"
    proc = run_here("eval", linear, "--html", tmp_path / "r.html", "--out", tmp_path / "ev", check=True)
    agg = json.loads(proc.stdout)
    assert agg["CCC_arousal"]["n"] == 4 and agg["CCC_arousal"]["mean"] > 0.5
    assert (tmp_path / "ev" / "values.png").stat().st_size > 0 and not (tmp_path / "ev" / "confusion.png").exists()
    page = (tmp_path / "r.html").read_text()
    assert "CCC_arousal" in page and "RMSE_valence" in page and "data:image/png" in page
    csv = run_here("eval", linear, "--csv", check=True).stdout.splitlines()
    assert csv[0].startswith("row,fold,seed,n,CCC,CCC_arousal,r_arousal,RMSE_arousal")
    proc = run_here("eval", "--compare", linear, mlp, check=True)
    rows = json.loads(proc.stdout)["runs"]
    assert rows[1]["vs_first"]["n_folds"] == 2 and "CCC_valence" in rows[1] and "ΔCCC" in proc.stderr


# -- protocols, strategies, refusals on stored features --------------------------------------------

@pytest.fixture
def dims(tmp_path):
    """make_corpus's records with arousal and valence from their emotion, one real record without
    arousal; its synthetic records carry none."""
    real, synthetic = make_corpus(tmp_path)
    rng = np.random.default_rng(0)
    records = _lines(real)
    for r in records:
        r["arousal"] = AROUSAL[r["emotion"]] + float(rng.normal()) * 0.05
        r["valence"] = {"angry": 0.2, "happy": 0.9, "sad": 0.1}[r["emotion"]]
    del records[5]["arousal"]
    path = tmp_path / "dims.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, synthetic, records


def test_holdout_real_fraction_and_multi_task(tmp_path, dims):
    path, _, _ = dims
    run = tmp_path / "run"
    proc = run_here("train", path, "--target", "emotion,arousal", "--test-speakers", "spk4", "--real-fraction", "0.5",
                    "--seed", "1", "--out", run, *QUICK)
    assert proc.returncode == 0, proc.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == ["angry", "happy", "sad"] and config["targets"] == ["arousal"]
    assert config["real"]["share"] == pytest.approx(0.5, abs=0.1)  # fold.py's fraction, as for emotions
    agg = json.loads(run_here("eval", run, check=True).stdout)
    assert agg["UA"]["mean"] > 0.6 and agg["CCC_arousal"]["mean"] > 0.5
    rec = json.loads(run_here("predict", run, path, check=True).stdout.splitlines()[0])
    assert set(rec["probabilities"]) == {"angry", "happy", "sad"} and set(rec["values"]) == {"arousal"}


def test_synthetic_records_without_the_target_are_skipped_and_mixup_refused(tmp_path, dims):
    path, synthetic, records = dims
    proc = run_here("train", path, "--target", "arousal", "--synthetic", synthetic, "--strategy", "mix",
                    "-O", "ratio=0", "--test-speakers", "spk4", "--out", tmp_path / "a", *QUICK)
    assert proc.returncode == 0, proc.stderr
    assert "--synthetic: skipped 12 of 12 records without a target value: arousal (12)" in proc.stderr
    proc = run_here("train", path, "--target", "arousal", "--strategy", "mixup", "--test-speakers", "spk4",
                    "--out", tmp_path / "b", *QUICK)
    assert proc.returncode == 1 and "mixup mixes the labels of classes" in proc.stderr
    # synthetic records given values do train; a strategy that ranks by class probability refuses
    given = tmp_path / "given.jsonl"
    given.write_text("".join(json.dumps({**r, "arousal": 0.5}) + "\n" for r in _lines(synthetic)))
    proc = run_here("train", path, "--target", "arousal", "--synthetic", given, "--strategy", "mix",
                    "-O", "ratio=1", "--test-speakers", "spk4", "--out", tmp_path / "c", *QUICK)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "c" / "config.json").read_text())["counts"]["synthetic_used"] > 0
    proc = run_here("train", path, "--target", "arousal", "--synthetic", given, "--strategy", "curriculum",
                    "-O", "order=confidence", "-O", "ratio=1", "--test-speakers", "spk4", "--out", tmp_path / "d",
                    *QUICK)
    assert proc.returncode == 1 and "order=confidence" in proc.stderr


@pytest.mark.parametrize("value, got", [('"high"', "a string ('high')"), ("[1, 2]", "a list ([1, 2])"),
                                        ("true", "a boolean (True)")])
def test_a_non_numeric_target_is_one_line_naming_record_line_and_field(tmp_path, dims, value, got):
    path, _, records = dims
    lines = path.read_text().splitlines()
    lines[7] = lines[7].replace(f'"arousal": {json.dumps(records[7]["arousal"])}', f'"arousal": {value}')
    path.write_text("\n".join(lines) + "\n")
    proc = run_here("train", path, "--target", "arousal", "--cv", "loso", "--out", tmp_path / "run", *QUICK)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "train: jobs" not in proc.stderr
    assert f"line 8: record {records[7]['id']!r}: target field 'arousal' is {got}" in errors[0]
    assert not (tmp_path / "run").exists()


def test_nan_targets_and_bad_target_lists_are_refused(tmp_path, dims):
    path, _, records = dims
    bad = tmp_path / "nan.jsonl"
    bad.write_text(path.read_text().replace(json.dumps(records[2]["arousal"]), "NaN", 1))
    proc = run_here("train", bad, "--target", "arousal", "--cv", "loso", "--out", tmp_path / "r", *QUICK)
    assert proc.returncode == 1 and "line 3: field 'arousal' holds NaN or infinity" in proc.stderr
    for spec, says in (("speaker", "not a numeric field"), ("emotion", "at least one numeric field"),
                       ("arousal,arousal", "each field once")):
        proc = run_here("train", path, "--target", spec, "--cv", "loso", "--out", tmp_path / "r", *QUICK)
        assert proc.returncode == 1 and says in proc.stderr, proc.stderr
    proc = run_here("train", path, "--target", "pleasure", "--cv", "loso", "--out", tmp_path / "r", *QUICK)
    assert proc.returncode == 1 and "no training records have pleasure" in proc.stderr
