"""Reports that do not mislead: McNemar for single splits, the setting of each run in the
compare table, no interval for one job, the pooled confusion per seed, the learnt layer
weights, and a self-contained HTML report."""

from __future__ import annotations

import base64
import json
import re

import pytest

from sercli.core.metrics import mcnemar

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the trained runs) are made once, not once on each worker
pytestmark = pytest.mark.xdist_group("report_views")

QUICK = ["--epochs", "4", "--patience", "2", "--batch-size", "16"]  # a few seconds a run


def test_mcnemar_exact_known_case():
    # 10 items only the first gets right, 2 only the second, 8 both, 5 neither:
    # p = 2 * P(X <= 2 | Binomial(12, 1/2)) = 2 * (1 + 12 + 66) / 4096
    first = [True] * 10 + [False] * 2 + [True] * 8 + [False] * 5
    second = [False] * 10 + [True] * 2 + [True] * 8 + [False] * 5
    out = mcnemar(first, second)
    assert (out["only_first"], out["only_second"], out["n"]) == (10, 2, 25)
    assert out["p"] == pytest.approx(2 * 79 / 4096)
    assert mcnemar(second, first)["p"] == pytest.approx(out["p"])  # symmetric
    assert mcnemar(first, first)["p"] == 1.0  # never disagree


def layered_corpus(root, layers=3, n_speakers=5, per_class=3):
    """Real and synthetic records with frame features of several layers (the signal in layer 1)."""
    import numpy as np

    from sercli.features.store import FeatureStore
    from test_train_eval import CLASSES

    rng = np.random.default_rng(0)
    store = FeatureStore(root / "store")
    store.init({"backbone": {"plugin": "toy", "options": {}}, "layers": "all",
                "layer_names": [str(i) for i in range(layers)], "pool": "none", "level": "frame",
                "dtype": "float32", "sample_rate": 16000})
    centers = rng.normal(size=(len(CLASSES), 6)) * 2
    out = {"real": [], "synthetic": []}
    with store.writer() as w:
        for part, speakers in (("real", [f"spk{s}" for s in range(n_speakers)]), ("synthetic", ["voice0", "voice1"])):
            for spk in speakers:
                for c in range(len(CLASSES)):
                    for k in range(per_class):
                        key = f"{part}-{spk}-{c}-{k}"
                        x = rng.normal(size=(layers, 5, 6)).astype(np.float32)
                        x[1] += centers[c]
                        w.add(key, x)
                        out[part].append({"id": key, "emotion": CLASSES[c], "speaker": spk, "source": part,
                                          "features": {"store": str(store.root.resolve()), "key": key,
                                                       "shape": list(x.shape)}})
    paths = root / "real.jsonl", root / "synthetic.jsonl"
    for path, part in zip(paths, ("real", "synthetic")):
        path.write_text("".join(json.dumps(r) + "\n" for r in out[part]))
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from test_train_eval import invoke

    root = tmp_path_factory.mktemp("runs")
    root.joinpath("c").mkdir()
    real, synthetic = layered_corpus(root / "c")
    split = ["--test-speakers", "spk3,spk4"]
    invoke("train", real, *split, "--out", root / "a", "--head", "mlp", "-O", "hidden=16", *QUICK)
    invoke("train", real, "--synthetic", synthetic, "--strategy", "mix", *split, "--head", "linear",
           "-O", "layers=weighted", "--out", root / "b", "--epochs", "4")
    invoke("train", real, "--cv", "loso", "--seeds", "0,1", "--head", "linear", "-O", "layers=weighted",
           "--out", root / "cv", "--epochs", "4")
    return root


def test_compare_single_splits_gets_mcnemar_and_the_setting(runs):
    from test_train_eval import invoke

    result = invoke("eval", "--compare", runs / "a", runs / "b")
    rows = json.loads(result.stdout.strip().splitlines()[-1])["runs"]
    assert rows[0]["head"].startswith("mlp") and rows[1]["head"] == "linear (layers=weighted)"
    assert rows[0]["features"] == rows[1]["features"] and "toy" in rows[0]["features"]
    mc = rows[1]["vs_first"]["mcnemar"]
    a = [json.loads(l) for l in (runs / "a" / "predictions.jsonl").read_text().splitlines()]
    b = {p["id"]: p for p in (json.loads(l) for l in (runs / "b" / "predictions.jsonl").read_text().splitlines())}
    only_a = sum(p["predicted"] == p["emotion"] and b[p["id"]]["predicted"] != p["emotion"] for p in a)
    only_b = sum(p["predicted"] != p["emotion"] and b[p["id"]]["predicted"] == p["emotion"] for p in a)
    assert (mc["only_first"], mc["only_second"], mc["n"]) == (only_a, only_b, len(a))
    assert rows[1]["vs_first"]["wilcoxon_p"] is None  # one fold: nothing to pair per fold


def test_one_job_shows_no_interval(runs):
    from rich.console import Console

    from sercli.commands.tables import aggregate_table

    agg = json.loads((runs / "a" / "metrics.json").read_text())
    console = Console(width=120, record=True)
    console.print(aggregate_table(agg, title="one job"))
    text = console.export_text()
    assert re.search(r"UA\s+│\s+[0-9.]+\s+│\s+-\s+│\s+-", text), text
    assert f"[{agg['UA']['mean']:.4f}, {agg['UA']['mean']:.4f}]" not in text


def test_eval_out_and_html_report(runs, tmp_path):
    from test_train_eval import invoke

    invoke("eval", runs / "cv", "--out", tmp_path / "ev", "--html", tmp_path / "r.html")
    assert (tmp_path / "ev" / "layer_weights.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "r.html").read_text()
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing outside the file
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) >= 3 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    agg = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert f"{agg['UA']['mean']:.4f}" in page and "Learnt layer weights" in page
    # the pooled confusion counts each utterance once: the per-seed means add up to the test utterances
    cells = re.findall(r"<tr><td>(\w+)</td>((?:<td>[0-9.]+</td>)+)<td>[0-9.-]+</td></tr>", page)
    counts = [float(v) for _, row in cells for v in re.findall(r"<td>([0-9.]+)</td>", row)]
    assert sum(counts) == pytest.approx(agg["pooled"]["n"] / 2)


def test_layer_weights_are_the_heads_softmax(runs):
    import torch

    from sercli.evaluation.report import layer_weights
    from sercli.learning.train import load_model

    weights, names = layer_weights(runs / "cv")
    assert len(names) == 3 and len(weights) == 10 and all(sum(w) == pytest.approx(1.0, abs=1e-5) for w in weights.values())
    model, _ = load_model(runs / "cv" / "fold-00-seed-0")
    assert weights["fold-00-seed-0"] == pytest.approx(torch.softmax(model.layer_logits, 0).tolist())
