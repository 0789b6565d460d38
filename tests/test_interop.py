"""Ways in and out: EmoBox jsonl, a Hugging Face datasets folder (records and pooled features),
predictions and metrics as CSV. Round trips keep every field."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from conftest import write_tone

QUICK = ["--epochs", "4", "--patience", "2", "--batch-size", "16"]  # a few seconds a run


def _emobox_corpus(tmp_path):
    lines = []
    for i, (spk, emo) in enumerate([("liuchang", "angry"), ("liuchang", "sad"), ("wangzhe", "neutral"), ("wangzhe", "angry")]):
        wav = f"downloads/casia/{spk}/{emo}/{200 + i}.wav"
        write_tone(tmp_path / wav, seconds=0.5 + 0.1 * i, freq=180 + 40 * i)
        row = {"key": f"casia-{200 + i}-{spk}-{emo}", "dataset": "casia", "wav": wav, "type": "raw",
               "sample_rate": 16000, "num_frame": float(8000 + 1600 * i), "task": "category",
               "length": 0.5 + 0.1 * i, "emo": emo, "channel": 1}
        if i == 0:
            row["extra_note"] = {"kept": [1, 2]}  # a field EmoBox may add: kept as it is
        lines.append(json.dumps(row))
    path = tmp_path / "casia.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_emobox_round_trip_keeps_every_field(cli, tmp_path):
    src = _emobox_corpus(tmp_path)
    manifest = tmp_path / "casia_records.jsonl"
    cli("prepare", "emobox", src, "-O", r"speaker_regex=^casia-\d+-(\w+?)-", "-o", manifest, check=True)
    records = [json.loads(l) for l in manifest.read_text().splitlines()]
    assert [r["speaker"] for r in records] == ["liuchang", "liuchang", "wangzhe", "wangzhe"]
    assert [r["emotion"] for r in records] == ["angry", "sad", "neutral", "angry"]
    assert all(r["audio"].startswith(str(tmp_path)) and r["duration"] > 0 for r in records)
    out = tmp_path / "back.jsonl"  # next to the original: the same relative wav paths
    cli("export", "emobox", manifest, "-o", out, check=True)
    assert [json.loads(l) for l in out.read_text().splitlines()] == [json.loads(l) for l in src.read_text().splitlines()]
    assert out.read_text() == src.read_text()


def test_emobox_export_of_other_records_reads_back(cli, tmp_path):
    rows = ["path,label,speaker"]
    for i, label in enumerate(["anger", "sadness"]):
        write_tone(tmp_path / "wav" / f"a{i}.wav", seconds=0.4)
        rows.append(f"wav/a{i}.wav,{label},s{i}")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    cli("prepare", "generic", tmp_path / "c.csv", "-o", tmp_path / "g.jsonl", check=True)
    cli("export", "emobox", tmp_path / "g.jsonl", "-o", tmp_path / "eb" / "g.jsonl", "--root", tmp_path, check=True)
    rows = [json.loads(l) for l in (tmp_path / "eb" / "g.jsonl").read_text().splitlines()]
    assert [(r["key"], r["wav"], r["emo"], r["sample_rate"], r["num_frame"]) for r in rows] == [
        ("wav/a0", "wav/a0.wav", "angry", 16000, 6400.0), ("wav/a1", "wav/a1.wav", "sad", 16000, 6400.0)]
    back = cli("prepare", "emobox", tmp_path / "eb" / "g.jsonl", "-O", f"root={tmp_path}", check=True).stdout
    assert [json.loads(l)["emotion"] for l in back.splitlines()] == ["angry", "sad"]
    # a segment EmoBox would cut from a longer file is refused, not read whole
    seg = dict(rows[0], start_time=0.1, end_time=0.3)
    (tmp_path / "seg.jsonl").write_text(json.dumps(seg) + "\n")
    proc = cli("prepare", "emobox", tmp_path / "seg.jsonl", "-O", f"root={tmp_path}")
    assert proc.returncode == 1 and "start_time" in proc.stderr


def _pooled_records(tmp_path, n=6, layers=3, dim=5):
    from sercli.features.store import FeatureStore

    rng = np.random.default_rng(0)
    store = FeatureStore(tmp_path / "store")
    store.init({"backbone": {"plugin": "toy", "options": {}}, "layers": "all", "layer_names": ["0", "1", "2"],
                "pool": "mean", "level": "frame", "dtype": "float16", "sample_rate": 16000})
    records, arrays = [], {}
    with store.writer() as w:
        for i in range(n):
            x = rng.normal(size=(layers, 1, dim)).astype(np.float16)
            w.add(f"r{i}", x)
            arrays[f"r{i}"] = x.astype(np.float32)
            rec = {"id": f"r{i}", "emotion": ["angry", "sad"][i % 2], "speaker": f"s{i % 3}", "duration": 1.5 + i,
                   "source": "real", "provenance": {"plugin": "toy", "options": {"a": [1, 2]}},
                   "features": {"store": str(store.root.resolve()), "key": f"r{i}", "shape": [layers, 1, dim]}}
            if i == 2:
                rec["transcript"] = "only this one has a transcript"
                rec["flag"] = True
            records.append(rec)
    path = tmp_path / "feats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, records, arrays


def test_datasets_round_trip_keeps_every_field_and_the_features(cli, tmp_path):
    datasets = pytest.importorskip("datasets")
    path, records, arrays = _pooled_records(tmp_path)
    cli("export", "datasets", path, "-o", tmp_path / "ds", check=True)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))  # a stock reader opens it
    assert len(ds) == len(records) and ds[0]["id"] == "r0"
    assert np.allclose(np.asarray(ds[3]["embedding"]), arrays["r3"][:, 0, :])
    proc = cli("import", "datasets", tmp_path / "ds", "-s", tmp_path / "store2", "-o", tmp_path / "back.jsonl", check=True)
    back = [json.loads(l) for l in (tmp_path / "back.jsonl").read_text().splitlines()]
    assert len(back) == len(records), proc.stderr
    from sercli.learning.data import read_features

    for a, b in zip(records, back):
        assert b["features"]["store"] == str((tmp_path / "store2").resolve())
        assert {k: v for k, v in a.items() if k != "features"} == {k: v for k, v in b.items() if k != "features"}
        assert {k: v for k, v in a["features"].items() if k != "store"} == {k: v for k, v in b["features"].items() if k != "store"}
        assert np.array_equal(read_features(b), arrays[a["id"]])
    # features need a store to go into
    bad = cli("import", "datasets", tmp_path / "ds")
    assert bad.returncode == 1 and "--store" in bad.stderr


def test_predictions_and_metrics_as_csv(tmp_path):
    from test_train_eval import invoke, make_corpus

    real, _ = make_corpus(tmp_path / "c")
    run = tmp_path / "run"
    invoke("train", real, "--test-speakers", "spk3,spk4", "--out", run, *QUICK)
    metrics = json.loads((run / "metrics.json").read_text())
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    pooled = next(r for r in rows if r["row"] == "pooled")
    assert float(pooled["UA"]) == pytest.approx(metrics["pooled"]["UA"]) and int(pooled["n"]) == metrics["pooled"]["n"]
    assert [r["row"] for r in rows] == ["job", "mean", "std", "pooled"]  # one job: no interval rows
    printed = list(csv.DictReader(io.StringIO(invoke("eval", run, "--csv").stdout)))
    assert [r["row"] for r in printed] == [r["row"] for r in rows]
    jsonl = [json.loads(l) for l in invoke("predict", run, run / "test.jsonl").stdout.splitlines()]
    invoke("predict", run, run / "test.jsonl", "-o", tmp_path / "p.csv")
    table = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["id"] for r in table] == [p["id"] for p in jsonl]
    for r, p in zip(table, jsonl):
        assert r["predicted"] == p["predicted"] and r["emotion"] == p["emotion"]
        assert {k[2:]: float(v) for k, v in r.items() if k.startswith("p_")} == p["probabilities"]
