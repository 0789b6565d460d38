"""The strategy and head families (`sercli train --strategy NAME --head NAME`, hooks
``register_strategies`` and ``register_heads``), and what a strategy may use of the trainer.

The data objects named in the annotations live in the learning stage and are handed out by
``sercli.api``: ``Examples`` (sercli.learning.data), ``HeadModule`` (sercli.learning.model),
``FitHooks`` and ``TrainConfig`` (sercli.learning.train).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from sercli.contract.common import Plugin


class TrainerAPI(Protocol):
    """What a strategy may use of the trainer it is given (``sercli.learning.train.Trainer``).

    A strategy decides what to train on and in which order; the trainer owns the loop, the
    loss, the optimiser, early stopping and the seeds, so that every strategy is compared on
    the same footing and the same command gives the same numbers.
    """

    labels: list[str]  # class names; an example's label is an index into this list
    cfg: "TrainConfig"  # read-only: seed, device, lr, max_epochs, batch_size...  # noqa: F821

    def new_model(self, stats_from: "Examples") -> "HeadModule":  # noqa: F821
        """A fresh head (same seed, same weights), standardised with statistics of
        ``stats_from`` (training data only, never ``val``)."""

    def fit(self, model: "HeadModule", train: "Examples", val: "Examples", *, max_epochs: int | None = None,  # noqa: F821
            stage: str = "train", lr: float | None = None, hooks: "FitHooks | None" = None) -> "HeadModule":  # noqa: F821
        """Train ``model`` in place on ``train`` and return it: early stopping on the UA of
        ``val``, keeping the best weights (or a fixed number of epochs when refitting).
        ``max_epochs`` caps this call, ``stage`` names it in the history, ``lr`` overrides the
        learning rate, ``hooks`` (``sercli.api.FitHooks``) add augmentation, mixup or an extra
        loss. A strategy may call it several times (stages) on the same model."""

    def predict(self, model: "HeadModule", data: "Examples") -> Any:  # noqa: F821
        """Class probabilities, a numpy array (len(data), len(labels))."""

    def note_used(self, **parts: "Examples | int") -> None:  # noqa: F821
        """Record what training used, e.g. ``note_used(synthetic=examples)``: the run reports
        it (not the synthetic data that was available)."""


class Strategy(Plugin):
    """A way to train a head on real plus synthetic examples (see TrainerAPI)."""

    def fit(self, trainer: TrainerAPI, real: "Examples", synthetic: "Examples", val: "Examples") -> "HeadModule":  # noqa: F821
        """Return the trained head (a ``trainer.new_model``, trained with ``trainer.fit``).

        ``real``, ``synthetic`` and ``val`` are ``sercli.api.Examples`` (records with integer
        labels into ``trainer.labels`` and domains 0 = real, 1 = synthetic); ``synthetic`` may
        be empty (use ``need_synthetic`` to refuse that) and ``val`` is for early stopping
        only. The test part never reaches a strategy. Call ``trainer.note_used(synthetic=...)``
        with the synthetic examples trained on. A SercliError ends the run (bad data, bad
        options); ``fit`` is called again, with a fresh trainer, for --tune and --refit."""
        raise NotImplementedError


class Head(Plugin):
    """A downstream model on the features (the part every backbone and strategy trains).

    ``build`` returns a fresh ``sercli.api.HeadModule`` (torch imported inside it); sercli
    fills its ``mean``/``std`` with training statistics, records its ``config`` (this head's
    name and options, the geometry) in the run folder and rebuilds it from there with
    ``build`` again, so the module must depend on nothing but the options and the arguments.
    """

    # True: the head needs frames (features extracted with ``--pool none``); sercli refuses
    # utterance-level features (one frame per utterance) before training.
    frame_level: ClassVar[bool] = False

    def build(self, num_layers: int, dim: int, num_classes: int) -> "HeadModule":  # noqa: F821
        """A new module for features (B, num_layers, T, dim) and ``num_classes`` classes."""
        raise NotImplementedError

    def search_space(self) -> dict[str, list | tuple]:
        """What ``train --search`` may choose among, per option: a list of values, or
        ``(low, high, "log" | "linear")`` for a number. Options left out keep their value."""
        return {}
