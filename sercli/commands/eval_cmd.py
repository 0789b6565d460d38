"""`sercli eval`: WA, UA, macro-F1 and the confusion matrix of a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.errors import SercliError
from sercli.log import console


def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder written by `sercli train`.")],
    records: Annotated[
        Optional[list[str]], typer.Argument(help="Test feature records (default: the run's held-out speakers).")
    ] = None,
    allow_speaker_overlap: Annotated[
        bool, typer.Option("--allow-speaker-overlap", help="Evaluate on speakers seen in training.")
    ] = False,
) -> None:
    """Evaluate a run on its held-out speakers (or on given records); JSON on stdout."""
    from sercli.data import Examples, feature_meta
    from sercli.metrics import compute_metrics, metrics_table
    from sercli.records import read_many
    from sercli.train import TrainConfig, Trainer, load_model

    model, config = load_model(run)
    default = run / "test.jsonl"
    if records:
        recs = read_many(records, required=("emotion", "features"))
    elif default.exists():
        recs = read_many([str(default)])
    else:
        raise SercliError(f"{run} has no held-out test speakers: pass test records, or train with --test-speakers")
    if feature_meta(recs) != config["features"]:
        raise SercliError("the test records' features were extracted with other settings than the model's")
    seen = set(config["speakers"]["train"]) | set(config["speakers"]["val"])
    overlap = sorted(seen & {str(r.get("speaker", "")) for r in recs})
    if overlap and not allow_speaker_overlap:
        raise SercliError(
            f"test speakers were seen in training ({', '.join(overlap[:5])}); "
            "pass --allow-speaker-overlap to evaluate anyway"
        )
    labels = config["labels"]
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({r["emotion"] for r in recs} - set(index))
    if unknown:
        raise SercliError(f"test records have emotions the model does not know: {', '.join(unknown)} (known: {', '.join(labels)})")
    data = Examples.build(recs, index, 0)
    trainer = Trainer(TrainConfig(**{**config["train"], "device": "cpu"}), labels)
    probs = trainer.predict(model, data)
    metrics = compute_metrics(data.labels, probs.argmax(1).tolist(), labels)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    console.print(metrics_table(metrics, title=f"Evaluation of {run}"))
    print(json.dumps({"run": str(run), **metrics}))
