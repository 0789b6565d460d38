"""Choosing a recipe inside the training fold: `train --search N` and `train --tune KEY=V1,V2`.

Both are one optuna study per job (in memory): ``--tune`` a grid (GridSampler, every
combination once), ``--search N`` N trials of a TPE search seeded with the job's seed, over
the head's ``search_space()`` plus the learning rate and weight decay (`space`). Each trial
trains on the fold's training part with early stopping on its validation part and is scored
by validation UA; the first of the best trials gives the job its parameters (its model is
kept: training again with them would give the same numbers). The ``fit`` function a study is
given sees only the fold's training and validation parts (sercli.runs.jobs): the test fold never
reaches a trial.

A search space maps an option to a list of choices, or to ``(low, high, "log" | "linear")``
(integers when both ends are integers).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

from sercli.core.errors import SercliError
from sercli.core.log import info

# Always searched, besides the head's own space.
TRAIN_SPACE: dict[str, Any] = {"lr": (1e-4, 1e-2, "log"), "weight_decay": (1e-6, 1e-1, "log")}

# fit(cfg) -> (validation UA, more numbers for the trial's row, what to keep of the best trial)
Fit = Callable[[Any], tuple[float, dict[str, float], Any]]


@dataclass
class Outcome:
    params: dict[str, Any]  # the chosen parameters ({} when nothing was chosen)
    cfg: Any  # the TrainConfig they give
    kept: Any  # what fit() returned to keep for the chosen trial
    trials: list[dict[str, Any]]  # every trial: its parameters and scores, in order
    method: dict[str, Any] | None  # sampler, trials, seed and space (None without a choice)


def head_space(cfg) -> dict[str, Any]:
    """The search space of the configured head (its plugin's ``search_space()``)."""
    from sercli.learning.train import head_plugin

    return dict(head_plugin(cfg.head, cfg.head_options).search_space())


def space(cfg) -> dict[str, Any]:
    """What `--search` samples: the head's space, the learning rate and the weight decay."""
    return {**head_space(cfg), **TRAIN_SPACE}


def apply(cfg, params: dict[str, Any]):
    """``cfg`` with ``params`` set: trainer keys as fields, the rest as head options."""
    from sercli.learning.train import with_params

    return with_params(cfg, params)


def choose(cfg, fit: Fit, *, grid: dict[str, list[Any]] | None = None, n_trials: int = 0,
           search_space: dict[str, Any] | None = None, seed: int = 0, where: str = "") -> Outcome:
    """Train ``cfg`` once (nothing to choose), every combination of ``grid``, or ``n_trials``
    of a TPE search over ``search_space`` (default: `space`); the first best by validation UA."""
    if grid and n_trials:
        raise SercliError("use either --search N or --tune, not both")
    if not grid and not n_trials:
        _, _, kept = fit(cfg)
        return Outcome({}, cfg, kept, [], None)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no per-trial lines; errors are ours to report
    if grid:
        sampler = optuna.samplers.GridSampler({k: list(v) for k, v in grid.items()}, seed=seed)
        n = 1
        for values in grid.values():
            n *= len(values)
        spec: dict[str, Any] = {k: list(v) for k, v in grid.items()}
        method = {"sampler": "grid", "n_trials": n, "seed": seed, "space": spec}
    else:
        spec = dict(search_space if search_space is not None else space(cfg))
        # a few random trials first, then TPE (its default of 10 would leave short searches random)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, n_trials // 2)))
        n = n_trials
        method = {"sampler": "tpe", "n_trials": n, "seed": seed,
                  "space": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}}
    trials: list[dict[str, Any]] = []
    best: dict[str, Any] = {}

    def objective(trial) -> float:
        params = {k: _suggest(trial, k, v) for k, v in spec.items()}
        trial_cfg = apply(cfg, params)
        score, row, kept = fit(trial_cfg)
        what = "CCC" if cfg.targets and "val_WA" not in row else "score" if cfg.targets else "UA"  # what `fit` scores
        trials.append({**params, f"val_{what}": score, **row})
        if not best or score > best["score"]:  # the first of the best wins ties
            best.update(score=score, params=params, cfg=trial_cfg, kept=kept)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        info(f"{where}trial {len(trials)}/{n}: {shown}: validation {what} {score:.4f}")
        return score

    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=n)
    return Outcome(best["params"], best["cfg"], best["kept"], trials, {**method, "chosen": best["params"]})


def _suggest(trial, name: str, spec: Any):
    if isinstance(spec, list):
        if not spec:
            raise SercliError(f"search space of {name!r}: no choices")
        return trial.suggest_categorical(name, spec)
    if isinstance(spec, tuple) and len(spec) == 3 and spec[2] in ("log", "linear"):
        low, high, scale = spec
        log = scale == "log"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            return trial.suggest_int(name, low, high, log=log)
        return trial.suggest_float(name, float(low), float(high), log=log)
    raise SercliError(f"search space of {name!r}: {spec!r} is neither a list of choices "
                      "nor (low, high, 'log'|'linear')")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
