"""Evaluating runs with dimensional targets (`sercli train --target arousal,valence`): per
dimension Lin's CCC, Pearson's r and the RMSE of a job's predicted values, their mean, std and
95% interval over folds x seeds (`sercli.evaluation.stats.summary`, as UA's), the pooled
predictions, and the rows of `eval --compare`. A multi-task run (``--target emotion,arousal``)
has the classification metrics beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sercli.core.errors import SercliError
from sercli.core.metrics import compute_metrics, dimension_names, regression_metrics
from sercli.evaluation.stats import _test_hash, summary

CLASS_METRICS = ("UA", "WA", "macro_F1")
Record = dict[str, Any]


def names(labels: list[str], targets: list[str]) -> list[str]:
    """The metrics a run summarises: the classification ones (multi-task), then CCC, r, RMSE per target."""
    return [*(CLASS_METRICS if labels else ()), *dimension_names(targets)]


def score_values(labels: list[str], targets: list[str], data, outputs: np.ndarray) -> tuple[dict[str, Any], list[Record]]:
    """(metrics, predictions) of a model's outputs on ``data``: class probabilities in the first
    len(labels) columns (multi-task), the targets' values in the others. A prediction holds the
    record's own target values and ``values``, the predicted ones."""
    c = len(labels)
    metrics: dict[str, Any] = {}
    predictions: list[Record] = [{"id": r.get("id"), "speaker": r.get("speaker")} for r in data.records]
    if c:
        pred = outputs[:, :c].argmax(1)
        metrics.update(compute_metrics(data.labels, pred.tolist(), labels))
        for row, r, p, probs in zip(predictions, data.records, pred, outputs[:, :c]):
            row.update(emotion=r["emotion"], predicted=labels[int(p)], probabilities=rounded_values(labels, probs))
    metrics.update(regression_metrics(data.values, outputs[:, c:], targets))
    for row, truth, values in zip(predictions, data.values, outputs[:, c:]):
        row.update({t: float(v) for t, v in zip(targets, truth)})
        row["values"] = rounded_values(targets, values)
    return metrics, predictions


def rounded_values(targets: list[str], row) -> dict[str, float]:
    """A row of predicted values as written (eval's predictions.jsonl and predict's records)."""
    return {t: round(float(v), 6) for t, v in zip(targets, row)}


def aggregate_values(results, labels: list[str], targets: list[str], strategy: dict[str, Any],
                     protocol: str) -> dict[str, Any]:
    """``results``: [(job, metrics, predictions)] -> the metrics.json of a run with targets: each
    metric's mean, std and 95% CI over the jobs, and the metrics of every prediction pooled."""
    metrics = names(labels, targets)
    jobs = []
    for job, m, predictions in results:
        jobs.append({"name": job["name"], "fold": job["fold"], "seed": job["seed"],
                     **({"seeds": job["seeds"]} if "seeds" in job else {}), "n": m["n"],
                     **{k: m[k] for k in metrics}, "test_hash": _test_hash(predictions),
                     **({"classes_absent": m.get("classes_absent", [])} if labels else {})})
    pooled_predictions = [p for _, _, predictions in results for p in predictions]
    truth = [[p[t] for t in targets] for p in pooled_predictions]
    predicted = [[p["values"][t] for t in targets] for p in pooled_predictions]
    pooled = regression_metrics(np.asarray(truth).reshape(-1, len(targets)),
                                np.asarray(predicted).reshape(-1, len(targets)), targets)
    if labels:
        index = {lab: i for i, lab in enumerate(labels)}
        pooled = {**compute_metrics([index[p["emotion"]] for p in pooled_predictions],
                                    [index[p["predicted"]] for p in pooled_predictions], labels), **pooled}
    return {
        "strategy": strategy, "protocol": protocol, "n_jobs": len(jobs), "n_folds": len({j["fold"] for j in jobs}),
        "seeds": sorted({j["seed"] for j in jobs}), "targets": list(targets), "metrics": metrics,
        **{k: summary([j[k] for j in jobs]) for k in metrics},
        "pooled": pooled,  # every test prediction of every fold and seed together
        "jobs": jobs,
    }


def compare_row(agg: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one run in `eval --compare`: each metric's mean, std and CI, pooled CCC."""
    return {"n_folds": agg["n_folds"], "n_jobs": agg["n_jobs"], "targets": agg["targets"],
            **{m: {key: agg[m][key] for key in ("mean", "std", "ci95")} for m in agg["metrics"]},
            "pooled_CCC": agg["pooled"]["CCC"]}


def refuse_mixed(aggs: list[tuple[str, dict[str, Any]]]) -> None:
    """Runs scored on different things (emotions against arousal, arousal against valence) have no
    number in common to compare."""
    def what(agg):
        emotion = ["the emotion"] if "UA" in (agg.get("metrics") or ["UA"]) else []
        return " and ".join(emotion + [", ".join(agg.get("targets") or [])] * bool(agg.get("targets")))

    first = aggs[0]
    other = next((name, agg) for name, agg in aggs if (agg.get("metrics") or []) != (first[1].get("metrics") or []))
    raise SercliError(f"--compare: {first[0]} predicts {what(first[1])} and {other[0]} predicts {what(other[1])}: "
                      "compare runs trained on the same --target")
