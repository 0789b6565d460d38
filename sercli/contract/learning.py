"""The strategy and head families (`sercli train --strategy NAME --head NAME`, hooks
``register_strategies`` and ``register_heads``), and what a strategy may use of the trainer.

The data objects named in the annotations live in the learning stage and are handed out by
``sercli.api`` (import them inside methods: they need numpy and torch): ``Examples``
(sercli.learning.data), ``HeadModule`` (sercli.learning.model), ``FitHooks`` and ``TrainConfig``
(sercli.learning.train). What each holds, with its signature (tests/test_boundary.py checks
these against the code):

``Examples(records, labels, domains, norm=None, values=None)``, a dataclass: the examples a strategy gets.

* ``records: list[dict]``: the records (``sercli.api.RECORD_FIELDS``: id, emotion, speaker,
  features...); read them, never change them.
* ``labels: list[int]``: each record's class, an index into ``trainer.labels``.
* ``domains: list[int]``: 0 real, 1 synthetic.
* ``norm: list[tuple[ndarray, ndarray] | None] | None``: per record, the (mean, std) its
  features are standardised with (``--norm speaker``; set by sercli).
* ``values: ndarray | None``: (N, K) float32, each record's values of the run's dimensional
  targets (``train --target arousal,valence``: ``trainer.cfg.targets``); None without targets.
  A run with targets only (no ``emotion`` among them) has no classes: ``trainer.labels`` is
  empty and every label is 0.
* ``len(ex)``; ``ex + other`` (a new ``Examples``, both in order); ``subset(idx)`` (those
  positions, in the order given); ``speakers() -> list[str]``; ``durations() -> list[float]``
  (seconds; a record without ``duration`` counts its frames); ``features(i) -> ndarray``
  ((layers, frames, dim) float32, standardised by ``norm[i]``); the classmethod
  ``build(records, label_index, domain, targets=None)`` (records whose emotion is in
  ``label_index``, every record when it is empty; with ``targets``, their ``values``).

``FitHooks(augment=None, mix=None, extra=None, extra_loss=None)``, a dataclass: how a strategy
changes one ``trainer.fit`` call. A batch is ``(x, lengths, labels, domains)``: ``x`` (B, L, T, D)
features padded along T, the others (B,). Random draws use the ``torch.Generator`` passed in.

* ``augment(model, x, lengths, y, generator) -> (x, lengths)``: transform each input batch.
* ``mix(emb, y, generator) -> (emb, y2, lam)``: mix the utterance embeddings (B, E); the loss
  becomes ``lam * CE(y) + (1 - lam) * CE(y2)`` (mixup).
* ``extra: nn.Module``: trained alongside the head (its parameters join the optimiser).
* ``extra_loss(model, extra, emb, batch, epoch) -> tensor``: a scalar added to each batch's loss.

``HeadModule(num_layers, dim, num_classes)``, a ``torch.nn.Module``: what ``Head.build`` returns
and ``trainer.new_model`` hands a strategy. A subclass sets ``classifier`` and ``embed_dim`` and
defines ``embed``; the rest is shared.

* ``config: dict``: num_layers, dim, num_classes (sercli adds the head's name and options).
* ``mean``, ``std``: buffers (num_layers, dim), the training statistics (filled by sercli).
* ``embed_dim: int``; ``classifier: nn.Module`` (embed_dim -> num_classes).
* ``standardise(x) -> x``: (B, L, T, D) z-scores with ``mean``/``std``.
* ``embed(x, lengths) -> emb``: (B, L, T, D) and lengths (B,) in frames -> (B, embed_dim).
* ``forward(x, lengths) -> logits``: ``classifier(embed(x, lengths))``, (B, num_classes).
* ``layer_weights() -> tensor | None``: softmax of a ``layer_logits`` parameter (L,), if any.
* ``mix_layers(x) -> tensor``: (B, L, T, D) -> (B, T, D), weighted by ``layer_weights()``.
* ``frame_mask(lengths, frames) -> mask`` (static): (B, T) 1 on real frames, 0 on padding.
* ``stats_pool(h, lengths, pool="mean", weights=None) -> tensor`` (static): (B, T, E) -> (B, E)
  mean, or (B, 2E) mean and std with ``pool="mean+std"``, over real frames (``weights`` (B, T):
  attentive pooling).

``TrainConfig`` (``trainer.cfg``, read-only): ``head``, ``head_options``, ``lr``,
``weight_decay``, ``batch_size``, ``max_epochs``, ``patience``, ``restarts`` (more early-stopped
rounds of each fit), ``balanced``, ``standardize``, ``seed``, ``device``, ``threads``, ``refit``,
``norm``, ``search``, ``finetune``, ``targets``
(the numeric record fields the head predicts, ``--target``; [] for a classifier). With
targets the trainer's loss is 1 - CCC per target (plus cross-entropy when it classifies too),
``evaluate`` returns CCC, r and RMSE per target, ``predict`` the class probabilities followed by
the targets' values (N, C + K), and early stopping keeps the best ``score`` (UA; the mean CCC;
or their mean). A strategy that needs classes (mixup, ranking by a class's probability) refuses
a run with targets in one line.

Helpers (``sercli.api``): ``need_synthetic(synthetic, strategy)`` (SercliError naming the
strategy when ``synthetic`` is empty) and ``sample_synthetic(real, synthetic, ratio, seed) ->
Examples`` (``ratio`` synthetic utterances per real one, in their order; all of them, with a
warning, when fewer exist).

What sercli checks: ``fit`` must return the model (a ``HeadModule``; with ``--finetune`` the
module ``new_model`` made); anything else ends the run with one line naming the strategy's
plugin.
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
        """Class probabilities, a numpy array (len(data), len(labels)); with ``cfg.targets``,
        followed by the K predicted values (len(data), len(labels) + K)."""

    def note_used(self, **parts: "Examples | int") -> None:  # noqa: F821
        """Record what training used, by kind, e.g. ``note_used(synthetic=examples)``: each
        keyword is a count (an ``Examples`` counts its length; a later call replaces it). Each
        kind ``K`` is written into the job's config.json as ``counts.K_used`` (``synthetic_used``
        beside ``synthetic``, what was available), and the progress line reports
        "N real + U of A synthetic". A strategy that never calls it reports no synthetic used."""

    def evaluate(self, model: "HeadModule", data: "Examples") -> tuple[float, dict[str, Any]]:  # noqa: F821
        """(cross-entropy loss, metrics {WA, UA, macro_F1, ..., score}) of ``model`` on ``data``
        (``score``: what early stopping maximises; with ``cfg.targets``, CCC_T, r_T, RMSE_T per
        target T too, and the loss adds 1 - their mean CCC)."""


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
