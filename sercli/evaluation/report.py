"""What a run learnt and scored, beyond the numbers: the learnt layer weights, and one
self-contained HTML page of an evaluation (`sercli eval RUN --html REPORT.html`): its tables
and figures (PNG, inlined as base64) in one file that opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from sercli.evaluation.evaluate import metric_names

MAX_CURVES = 12  # jobs whose training curves the page shows (a 10-fold x 5-seed run has 50)


def layer_weights(run: Path) -> tuple[dict[str, list[float]], list[str]]:
    """(job name -> its head's softmax layer weights, layer names) for heads that learn them
    (``HeadModule.layer_weights()``); ({}, []) otherwise."""
    from sercli.core.runfolder import jobs_of
    from sercli.learning.train import load_model

    weights, names = {}, []
    for job in jobs_of(Path(run)):
        model, config = load_model(job["dir"])
        w = model.layer_weights() if hasattr(model, "layer_weights") else None
        if w is None or len(w) < 2:  # no learnt weights, or one layer: nothing to weigh
            return {}, []
        weights[job["name"]] = [float(v) for v in w.detach().cpu().numpy()]
        names = list((config.get("features") or {}).get("layer_names") or [])
    return weights, names


def write_layer_weights(run: Path, path: Path) -> bool:
    """layer_weights.png of ``run`` at ``path``; False (nothing written) for heads without them."""
    from sercli.evaluation.figures import layer_weights_png

    weights, names = layer_weights(run)
    if weights:
        layer_weights_png(weights, names, path, title=f"{Path(run).name}: learnt layer weights")
    return bool(weights)


def html_report(run: Path, agg: dict[str, Any], path: Path, title: str | None = None, results=None) -> None:
    """One HTML file: the run's setting, the jobs, mean/std/CI, pooled recall and confusion
    (mean counts per seed), the confusion matrix, layer weights and training curves."""
    from sercli.evaluation.describe import describe_run, seeds_of
    from sercli.evaluation.figures import chosen_epochs, confusion_png, training_curves
    from sercli.core.fsutil import atomic_write_text
    from sercli.core.runfolder import HISTORY_FILE, jobs_of, read_json

    run = Path(run)
    seeds = seeds_of(agg)
    parts = [f"<h1>{_e(title or run.name)}</h1>"]
    setting = {**describe_run(run), "strategy": _strategy(agg), "protocol": agg.get("protocol", "?"),
               "jobs": f"{agg['n_folds']} folds x {len(agg.get('seeds') or [])} seeds"}
    parts.append(_table([], [[k, v] for k, v in setting.items()]))
    parts.append("<h2>Test metrics</h2>")
    one = len(agg["jobs"]) < 2
    names = metric_names(agg)  # WA, UA, macro-F1; or CCC, r, RMSE per dimensional target
    parts.append(_table(["metric", "mean", "std", "95% CI"], [
        [m, f"{agg[m]['mean']:.4f}", "-" if one else f"{agg[m]['std']:.4f}",
         "-" if one else f"{agg[m]['ci95'][0]:.4f} – {agg[m]['ci95'][1]:.4f}"] for m in names]))
    parts.append(_table(["job", "fold", "seed", "n", *names], [
        [j["name"], j["fold"], j["seed"], j["n"], *(f"{j[m]:.4f}" for m in names)] for j in agg["jobs"]]))
    pooled = agg["pooled"]
    if agg.get("targets"):
        parts.append(f"<h2>All test predictions pooled</h2><p>n = {pooled['n']}</p>")
        parts.append(_table(["target", "CCC", "r", "RMSE"], [
            [t, *(f"{pooled[f'{m}_{t}']:.4f}" for m in ("CCC", "r", "RMSE"))] for t in agg["targets"]]))
    labels = pooled.get("labels") or []
    if labels:
        parts.append(f"<h2>Pooled emotion predictions</h2><p>n = {pooled['n']}, WA {pooled['WA']:.4f}, "
                     f"UA {pooled['UA']:.4f}, macro-F1 {pooled['macro_F1']:.4f}"
                     + (f"; counts are means over {seeds} seeds (each utterance once)" if seeds > 1 else "") + "</p>")
        rows = [[lab, *[f"{v / seeds:.1f}" if seeds > 1 else v for v in row],
                 "-" if pooled["recall"].get(lab) is None else f"{pooled['recall'][lab]:.3f}"]
                for lab, row in zip(labels, pooled["confusion"])]
        parts.append(_table(["true \\ predicted", *labels, "recall"], rows))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if labels:
            confusion_png(pooled, tmp / "confusion.png", title=f"{run.name}: pooled test predictions", seeds=seeds)
            parts.append(_img(tmp / "confusion.png", "confusion matrix"))
        if results is not None and agg.get("targets"):
            from sercli.evaluation.write import values_figure

            values_figure(results, agg["targets"], tmp / "values.png", f"{run.name}: pooled test predictions")
            parts.append(_img(tmp / "values.png", "predicted against true values"))
        if write_layer_weights(run, tmp / "layers.png"):
            parts.append("<h2>Learnt layer weights</h2>" + _img(tmp / "layers.png", "layer weights"))
        jobs = jobs_of(run)
        parts.append("<h2>Training curves</h2><p>Dotted red: the epoch early stopping kept.</p>")
        for job in jobs[:MAX_CURVES]:
            hist_path = Path(job["dir"]) / HISTORY_FILE
            if not hist_path.exists():
                continue
            history = read_json(hist_path, list)
            png = tmp / f"curves-{len(parts)}.png"
            training_curves(history, png, title=f"{job['name']}: chosen epoch(s) "
                            + ", ".join(str(k + 1) for k in chosen_epochs(history)))
            if png.exists():
                parts.append(_img(png, f"training curves of {job['name']}"))
        if len(jobs) > MAX_CURVES:
            parts.append(f"<p>(and {len(jobs) - MAX_CURVES} more jobs: see their curves.png)</p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title or run.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}"
            f"<details><summary>metrics.json</summary><pre>{_e(json.dumps(agg, indent=1))}</pre></details>"
            "</body></html>\n")
    atomic_write_text(Path(path), page)


def _strategy(agg: dict[str, Any]) -> str:
    from sercli.evaluation.evaluate import strategy_label

    return strategy_label(agg.get("strategy") or {})


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"
