"""How much synthetic data a strategy trains on, and the harm guard that chooses it per job.

Synthetic speech can hurt as well as help, and which it does depends on the corpus, the
amount of real data and the synthetic speech itself. A choice made on one validation split
picks on noise: differences below a point decide. With ``ratio=auto`` the guard measures
instead: the job's training part is cut into ``inner_folds`` speaker-grouped inner folds (by
utterance, stratified, when it has a single speaker); for each inner fold and each candidate
amount (``ratios``; 0 is the real data alone) a fresh head trains on the other inner folds plus
that amount of synthetic data (early stopping on the job's validation part) and is scored by
UA on the inner fold's held-out speakers. The gain of each amount over 0 is paired per inner
fold, and an amount is taken only when the lower bound of its one-sided ``confidence`` interval
(Student's t over the inner folds) is above zero: of those, the largest mean gain, ties to the
smaller amount. Otherwise the real data alone. Speech derived from a recording of an inner
fold's held-out speakers (``derived_from``) is left out of that inner fold's training. The test
fold is never seen. The inner gains and the choice go into the job's config (``strategy.chosen``);
a refit (``--refit``) keeps the choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Union

from pydantic import AfterValidator, Field

from sercli.api import Options, SercliError, Strategy, derived_only_from, info, need_synthetic, sample_synthetic

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI

RATIO_HELP = ("Synthetic utterances per real one (0: none; all: every one), or auto: the best of `ratios` "
              "by validation UA, per fold.")
RATIOS_HELP = "Candidates for ratio=auto, comma-separated (0 = real data only; all = every synthetic utterance)."


class GuardOptions(Options):
    """The harm guard's settings, shared by every amount strategy (``ratio=auto``)."""

    inner_folds: int = Field(5, ge=2, le=20, description="ratio=auto: speaker-grouped inner folds of the training "
                             "part on which each amount's gain over real data alone is measured.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="ratio=auto: an amount is taken only when the "
                              "lower bound of this one-sided confidence interval of its paired gain is above 0.")


def check_ratio(value: Any) -> Any:
    """A ratio is >= 0, "all" or "auto"."""
    if isinstance(value, (int, float)) and value < 0:
        raise ValueError("ratio must be 0 or more, 'all' or 'auto'")
    return value


# a number of synthetic utterances per real one, "all" of them, or "auto" (chosen per fold)
Ratio = Annotated[Union[float, Literal["all", "auto"]], AfterValidator(check_ratio)]


def parse_ratios(text: str) -> list[float | str]:
    """``"0,0.5,all"`` -> ``[0.0, 0.5, "all"]`` (sorted, smallest amount first)."""
    out: list[float | str] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if part == "all":
            out.append("all")
            continue
        try:
            value = float(part)
        except ValueError:
            raise SercliError(f"ratios={text!r}: expected comma-separated numbers >= 0 or 'all'") from None
        if value < 0:
            raise SercliError(f"ratios={text!r}: a ratio is 0 or more")
        out.append(value)
    if not out:
        raise SercliError(f"ratios={text!r}: give at least one candidate ratio")
    return sorted(dict.fromkeys(out), key=lambda r: float("inf") if r == "all" else r)


def _check_ratios(text: str) -> str:
    try:
        parse_ratios(text)
    except SercliError as exc:
        raise ValueError(str(exc)) from None
    return text


Ratios = Annotated[str, AfterValidator(_check_ratios)]


def take(real: "Examples", synthetic: "Examples", ratio: float | str, seed: int) -> "Examples":
    """The synthetic examples a ``ratio`` asks for (a seeded subset; every one for "all")."""
    if ratio == "all":
        return synthetic
    return sample_synthetic(real, synthetic, float(ratio), seed)


def val_ua(trainer: "TrainerAPI", model: "HeadModule", val: "Examples") -> float:
    """Unweighted accuracy on the validation part: the mean recall of the classes it holds; with
    dimensional targets (``trainer.cfg.targets``), the trainer's score (their mean CCC)."""
    import numpy as np

    if getattr(trainer.cfg, "targets", None):
        return float(trainer.evaluate(model, val)[1]["score"])
    y = np.asarray(val.labels)
    pred = trainer.predict(model, val).argmax(1)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)])) if len(y) else 0.0


def inner_folds(real: "Examples", k: int, seed: int) -> tuple[list[tuple[list[int], list[int]]], str]:
    """(inner folds of ``real`` as (train, held-out) index lists, how they were cut): grouped by
    speaker and stratified by emotion where ``real`` has two speakers or more, else by utterance."""
    import warnings

    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(real.labels)
    speakers = real.speakers()
    x = np.zeros(len(y))
    with warnings.catch_warnings():  # "least populated class has only N members"
        warnings.simplefilter("ignore", UserWarning)
        if len(set(speakers)) >= 2:
            n = min(k, len(set(speakers)))
            split = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(x, y, speakers)
            how = f"{n} folds by speaker"
        else:
            n = max(2, min(k, int(np.bincount(y).max())))
            split = StratifiedKFold(n_splits=n, shuffle=True, random_state=seed).split(x, y)
            how = f"{n} folds by utterance (one training speaker)"
        folds = [(a.tolist(), b.tolist()) for a, b in split]
    return [f for f in folds if f[0] and f[1]], how


def guard(strategy, trainer: "TrainerAPI", real: "Examples", synthetic: "Examples", val: "Examples",
          train: Callable[["TrainerAPI", "Examples", "Examples", float | str], "HeadModule"]) -> dict[str, Any]:
    """The harm guard's choice (see the module docstring): ``{"ratio", "rule", "inner", ...}``."""
    import numpy as np
    from scipy import stats

    if not len(synthetic):
        return {"ratio": 0.0, "rule": "no synthetic data", "inner": None, "gain": {}}
    candidates = parse_ratios(strategy.options.ratios)
    if 0.0 not in candidates:
        candidates = [0.0, *candidates]
    k = getattr(strategy.options, "inner_folds", 5)
    level = getattr(strategy.options, "confidence", 0.95)
    folds, how = inner_folds(real, k, trainer.cfg.seed)
    scores: dict[str, list[float]] = {str(r): [] for r in candidates}
    for inner, held in folds:
        part, test = real.subset(inner), real.subset(held)
        pool = derived_only_from(part, synthetic)  # no speech derived from the held-out recordings
        for r in candidates:
            trial = type(trainer)(trainer.cfg, trainer.labels)
            scores[str(r)].append(val_ua(trial, train(trial, part, pool, r), test))
    base = np.asarray(scores["0.0"])
    gains, best, best_mean = {}, 0.0, 0.0
    for r in candidates:
        if r in (0, 0.0):
            continue
        g = np.asarray(scores[str(r)]) - base
        sd = float(g.std(ddof=1)) if len(g) > 1 else float("inf")
        lcb = float(g.mean() - stats.t.ppf(level, len(g) - 1) * sd / np.sqrt(len(g))) if len(g) > 1 else float("-inf")
        gains[str(r)] = {"mean": round(float(g.mean()), 4), "lower_bound": round(lcb, 4)}
        if lcb > 0 and g.mean() > best_mean:
            best, best_mean = r, float(g.mean())
    return {"ratio": best, "rule": f"lower bound of the one-sided {level:.0%} interval of the gain > 0",
            "inner": {"folds": len(folds), "how": how, "UA": {r: [round(s, 4) for s in v] for r, v in scores.items()}},
            "gain": gains}


def fit_amount(strategy, trainer: "TrainerAPI", real: "Examples", synthetic: "Examples", val: "Examples",
               train: Callable[["TrainerAPI", "Examples", "Examples", float | str], "HeadModule"]) -> "HeadModule":
    """``train(trainer, real, synthetic, ratio)`` with the strategy's ``ratio``, or with
    ``ratio=auto`` with the amount the harm guard chose (`guard`: each candidate trained by fresh
    trainers of the same configuration, then the chosen one again by ``trainer``, so its history
    and the synthetic data it notes are the chosen training's). The choice is in
    ``strategy.chosen``."""
    ratio = strategy.options.ratio
    if ratio != "auto":
        return train(trainer, real, synthetic, ratio)
    if getattr(trainer, "schedule", None) is not None and getattr(strategy, "chosen", None):
        return train(trainer, real, synthetic, strategy.chosen["ratio"])  # a refit: keep the choice
    strategy.chosen = guard(strategy, trainer, real, synthetic, val, train)
    gains = strategy.chosen["gain"]
    if strategy.chosen["inner"]:
        info(f"{strategy.name}: ratio {strategy.chosen['ratio']} chosen by the harm guard "
             f"({strategy.chosen['inner']['how']}; "
             + ", ".join(f"gain of {k}: {v['mean']:+.3f}, lower bound {v['lower_bound']:+.3f}" for k, v in gains.items())
             + ")")
    return train(trainer, real, synthetic, strategy.chosen["ratio"])


def provenance_with_choice(strategy, base: dict[str, Any]) -> dict[str, Any]:
    """The strategy's provenance, with the amount chosen for this fold when ratio=auto chose one."""
    chosen = getattr(strategy, "chosen", None)
    return {**base, "chosen": chosen} if chosen else base


class AmountStrategy(Strategy):
    """A strategy that trains on an amount of synthetic data, its ``ratio`` option (``auto``:
    chosen per fold by ``fit_amount``). A subclass defines ``train(trainer, real, used, val,
    ratio)``: one training on the real data and the synthetic examples ``used``."""

    chosen = None

    def fit(self, trainer: "TrainerAPI", real: "Examples", synthetic: "Examples", val: "Examples") -> "HeadModule":
        if self.options.ratio != 0:
            need_synthetic(synthetic, self.name)
        return fit_amount(self, trainer, real, synthetic, val, lambda trainer, part, pool, ratio: self.train(
            trainer, part, take(part, pool, ratio, trainer.cfg.seed), val, ratio))

    def train(self, trainer: "TrainerAPI", real: "Examples", used: "Examples", val: "Examples",
              ratio: float | str) -> "HeadModule":
        raise NotImplementedError

    def provenance(self) -> dict:
        return provenance_with_choice(self, super().provenance())
