"""From records to a trained run folder: splits, strategy, checkpoint and provenance."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sercli.errors import SercliError
from sercli.log import warn


@dataclass
class Split:
    labels: list[str]
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    test: list[dict[str, Any]]


def build_split(
    records: list[dict[str, Any]],
    classes: list[str],
    test_speakers: list[str],
    val_speakers: list[str],
    val_fraction: float,
    seed: int,
) -> Split:
    """Hold out test speakers, then a validation part grouped by speaker from the rest."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

    labels = classes or sorted({r["emotion"] for r in records})
    unknown = sorted({r["emotion"] for r in records} - set(labels))
    if unknown and classes:
        warn(f"ignoring records with emotions outside --classes: {', '.join(unknown)}")
    records = [r for r in records if r["emotion"] in labels]
    if not records:
        raise SercliError(f"no records with emotions {', '.join(labels)}")
    speakers = {str(r.get("speaker", "")) for r in records}
    for name, given in (("--test-speakers", test_speakers), ("--val-speakers", val_speakers)):
        missing = sorted(set(given) - speakers)
        if missing:
            raise SercliError(f"{name}: no records of speaker(s) {', '.join(missing)} (known: {', '.join(sorted(speakers))})")
    if set(test_speakers) & set(val_speakers):
        raise SercliError("--test-speakers and --val-speakers overlap")
    test = [r for r in records if str(r.get("speaker", "")) in test_speakers]
    rest = [r for r in records if str(r.get("speaker", "")) not in test_speakers]
    if not rest:
        raise SercliError("every speaker is a test speaker: nothing left to train on")
    if val_speakers:
        val = [r for r in rest if str(r.get("speaker", "")) in val_speakers]
        train = [r for r in rest if str(r.get("speaker", "")) not in val_speakers]
    else:
        groups = [str(r.get("speaker", "")) for r in rest]
        y = [r["emotion"] for r in rest]
        if len(set(groups)) >= 3:
            splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
            tr, va = next(splitter.split(rest, y, groups))
        else:
            warn("fewer than 3 training speakers: validation split is by utterance, not by speaker")
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
            tr, va = next(splitter.split(rest, y))
        train = [rest[i] for i in tr]
        val = [rest[i] for i in va]
    if not train or not val:
        raise SercliError("the validation split left no training or no validation data")
    return Split(labels, train, val, test)


def file_sha256(path: str) -> str | None:
    if path == "-" or not Path(path).exists():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    import numpy
    import sklearn
    import torch

    from sercli import __version__

    return {
        "sercli": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "scikit-learn": sklearn.__version__, "platform": sys.platform,
    }


def run_training(strategy, cfg, split: Split, synthetic: list[dict[str, Any]], out: Path, inputs: list[str]) -> dict[str, Any]:
    """Train with ``strategy`` and write the run folder; returns a summary."""
    from sercli.data import Examples, feature_meta
    from sercli.train import Trainer, config_dict, save_model

    meta = feature_meta(split.train + split.val + split.test + synthetic)
    index = {lab: i for i, lab in enumerate(split.labels)}
    dropped = sorted({r["emotion"] for r in synthetic} - set(index))
    if dropped:
        warn(f"synthetic records with emotions not learnt are ignored: {', '.join(dropped)}")
    real_ex = Examples.build(split.train, index, 0)
    val_ex = Examples.build(split.val, index, 0)
    syn_ex = Examples.build(synthetic, index, 1)

    trainer = Trainer(cfg, split.labels)
    model = strategy.fit(trainer, real_ex, syn_ex, val_ex)
    _, val_metrics = trainer.evaluate(model, val_ex)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spk = lambda recs: sorted({str(r.get("speaker", "")) for r in recs})  # noqa: E731
    config = {
        "labels": split.labels,
        "features": meta,
        "strategy": strategy.provenance(),
        "train": config_dict(cfg),
        "speakers": {"train": spk(split.train), "val": spk(split.val), "test": spk(split.test)},
        "counts": {"train": len(real_ex), "val": len(val_ex), "test": len(split.test), "synthetic": len(syn_ex)},
        "inputs": {p: file_sha256(p) for p in inputs},
        "versions": versions(),
        "val_metrics": val_metrics,
    }
    save_model(model, out, config)
    (out / "history.json").write_text(json.dumps(trainer.history.epochs, indent=1))
    if split.test:
        with open(out / "test.jsonl", "w") as fh:
            for r in split.test:
                fh.write(json.dumps(r) + "\n")
    return {"n_train": len(real_ex), "n_synthetic": len(syn_ex), "val_UA": val_metrics["UA"]}
