"""How much synthetic data a strategy trains on, chosen per fold by validation UA.

Synthetic speech can hurt as well as help, and which it does depends on the corpus, the
amount of real data and the synthetic speech itself. With ``ratio=auto`` a strategy trains
once per candidate amount (``ratios``, where 0 is the real data alone) on the fold's training
part, scores each on the fold's validation part, and keeps the best; ties go to the smaller
amount, so synthetic data stays out unless the validation part shows that it helps. The test
fold is never seen. The choice is kept for a refit (``--refit``), whose validation part is
training data and cannot choose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Union

from pydantic import AfterValidator

from sercli.api import SercliError, Strategy, info, need_synthetic, sample_synthetic

if TYPE_CHECKING:
    from sercli.api import Examples, HeadModule, TrainerAPI

RATIO_HELP = ("Synthetic utterances per real one (0: none; all: every one), or auto: the best of `ratios` "
              "by validation UA, per fold.")
RATIOS_HELP = "Candidates for ratio=auto, comma-separated (0 = real data only; all = every synthetic utterance)."


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
    """Unweighted accuracy on the validation part: the mean recall of the classes it holds."""
    import numpy as np

    y = np.asarray(val.labels)
    pred = trainer.predict(model, val).argmax(1)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)])) if len(y) else 0.0


def fit_amount(strategy, trainer: "TrainerAPI", real: "Examples", synthetic: "Examples", val: "Examples",
               train: Callable[["TrainerAPI", float | str], "HeadModule"]) -> "HeadModule":
    """``train(trainer, ratio)`` with the strategy's ``ratio``, or with ``ratio=auto`` with the
    candidate that scores best on ``val`` (each candidate trained by a fresh trainer of the same
    configuration, then the chosen one again by ``trainer``, so its history and the synthetic
    data it notes are the chosen training's). The choice is in ``strategy.chosen``."""
    ratio = strategy.options.ratio
    if ratio != "auto":
        return train(trainer, ratio)
    if getattr(trainer, "schedule", None) is not None and getattr(strategy, "chosen", None):
        return train(trainer, strategy.chosen["ratio"])  # a refit: keep the choice made on validation
    candidates = parse_ratios(strategy.options.ratios) if len(synthetic) else [0.0]
    scores: dict[str, float] = {}
    for r in candidates:
        trial = type(trainer)(trainer.cfg, trainer.labels)
        scores[str(r)] = val_ua(trial, train(trial, r), val)
    best = max(candidates, key=lambda r: (scores[str(r)], -candidates.index(r)))  # ties: less synthetic
    strategy.chosen = {"ratio": best, "val_UA": scores}
    info(f"{strategy.name}: ratio {best} chosen by validation UA ("
         + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()) + ")")
    return train(trainer, best)


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
        return fit_amount(self, trainer, real, synthetic, val, lambda trainer, ratio: self.train(
            trainer, real, take(real, synthetic, ratio, trainer.cfg.seed), val, ratio))

    def train(self, trainer: "TrainerAPI", real: "Examples", used: "Examples", val: "Examples",
              ratio: float | str) -> "HeadModule":
        raise NotImplementedError

    def provenance(self) -> dict:
        return provenance_with_choice(self, super().provenance())
