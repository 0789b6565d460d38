"""Predictions and metrics as CSV, for spreadsheets and pandas (JSON stays the full record).

A predictions CSV has one row per record: its scalar fields (id, speaker, emotion, predicted...;
an object or list field as JSON text), then one ``p_LABEL`` column per class. A metrics CSV has
one row per job, one per summary statistic over the jobs (mean, std, ci95_low, ci95_high) and
one for the pooled predictions, with WA, UA, macro-F1 and (pooled row) each class's recall.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sercli.evaluation.evaluate import metric_names


def predictions_csv(records: list[dict[str, Any]]) -> str:
    """(a run with dimensional targets: one ``predicted_TARGET`` column per target, from ``values``)"""
    labels: list[str] = []
    targets: list[str] = []
    columns: list[str] = []
    for rec in records:
        for key in rec:
            if key not in ("probabilities", "values") and key not in columns:
                columns.append(key)
        for names, field in ((labels, "probabilities"), (targets, "values")):
            names += [n for n in rec.get(field) or {} if n not in names]
    rows = []
    for rec in records:
        row = {k: _cell(rec.get(k)) for k in columns}
        row.update({f"p_{lab}": (rec.get("probabilities") or {}).get(lab, "") for lab in labels})
        row.update({f"predicted_{t}": (rec.get("values") or {}).get(t, "") for t in targets})
        rows.append(row)
    return _write([*columns, *(f"p_{lab}" for lab in labels), *(f"predicted_{t}" for t in targets)], rows)


def metrics_csv(agg: dict[str, Any]) -> str:
    pooled = agg["pooled"]
    labels = list(pooled.get("labels") or [])
    METRICS = metric_names(agg)  # WA, UA, macro-F1; or CCC, r, RMSE per dimensional target
    columns = ["row", "fold", "seed", "n", *METRICS, *(f"recall_{lab}" for lab in labels)]
    rows = [{"row": "job", "fold": j["fold"], "seed": j["seed"], "n": j["n"], **{m: j[m] for m in METRICS}}
            for j in agg["jobs"]]
    n_jobs = len(agg["jobs"])
    for stat in ("mean", "std", "ci95_low", "ci95_high"):
        if stat.startswith("ci95") and n_jobs < 2:
            continue  # one job has no interval
        pick = (lambda s: s["ci95"][0]) if stat == "ci95_low" else (lambda s: s["ci95"][1]) if stat == "ci95_high" \
            else (lambda s, stat=stat: s[stat])
        rows.append({"row": stat, "n": n_jobs, **{m: pick(agg[m]) for m in METRICS}})
    recall = pooled.get("recall") or {}
    rows.append({"row": "pooled", "n": pooled["n"], **{m: pooled[m] for m in METRICS},
                 **{f"recall_{lab}": "" if recall.get(lab) is None else recall[lab] for lab in labels}})
    return _write(columns, rows)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
