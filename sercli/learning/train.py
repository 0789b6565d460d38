"""The training engine shared by every strategy: one visible loop with early stopping.

Strategies (plugins) decide *what* to train on and in which order; the Trainer decides
*how*: batches, loss, optimiser, and early stopping on the validation UA, restoring the
best weights. The test fold never reaches this module.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from sercli.learning.data import Examples, collate, layer_stats
from sercli.core.metrics import compute_metrics
from sercli.learning.model import HeadModule
from sercli.learning.heads import TUNABLE, build_head, head_plugin, seed_everything


# The head `sercli train` uses without --head (a name of the "head" plugin family).
DEFAULT_HEAD = "linear"
NORMS = ("none", "speaker", "auto")  # auto: resolved before training (sercli.runs.jobs.resolve_norm)


@dataclass
class TrainConfig:
    head: str = DEFAULT_HEAD  # a head plugin (`sercli plugins`)
    head_options: dict[str, Any] = field(default_factory=dict)  # resolved by the head's Options
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 60
    patience: int = 10
    # Warm restarts: after early stopping, this many more rounds, each from the weights the
    # previous one kept, with a fresh optimiser (see Trainer.fit).
    restarts: int = 0
    balanced: bool = True  # class-weighted loss: UA counts every class the same
    standardize: bool = True  # per-layer, per-dimension z-scores with training statistics
    seed: int = 0
    device: str = "cpu"
    # CPU threads: a small head trains several times faster on one thread than on a busy pool
    threads: int = 1
    # After early stopping, train again on training + validation data for the epochs found.
    refit: bool = False
    norm: str = "none"  # "speaker": features standardised per speaker (sercli.learning.speakernorm)
    search: int = 0  # optuna trials per training fold (0: none)
    finetune: dict[str, Any] | None = None  # set by fine-tuning: backbone name, options, mode
    targets: list[str] = field(default_factory=list)  # --target: numeric fields to predict (sercli.learning.targets)

    def __post_init__(self) -> None:
        from sercli.core.errors import SercliError

        if self.norm not in NORMS:
            raise SercliError(f"--norm {self.norm!r}: expected {' or '.join(NORMS)}")
        if self.search < 0:
            raise SercliError(f"--search {self.search}: expected a number of trials, 0 or more")
        if self.restarts < 0:
            raise SercliError(f"--restarts {self.restarts}: expected a number of rounds, 0 or more")
        if self.targets and self.finetune:
            raise SercliError("--target trains a head on stored features: it does not go with --finetune yet")
        # every option spelt out (defaults too), so that run folders say what was trained
        self.head_options = head_plugin(self.head, self.head_options).options.model_dump(mode="json")


def with_params(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``cfg`` with tuned values: trainer keys replace fields, any other key is a head option
    (validated by the head; an unknown key is refused there)."""
    trainer = {k: v for k, v in params.items() if k in TUNABLE}
    head = {k: v for k, v in params.items() if k not in TUNABLE}
    return replace(cfg, **trainer, head_options={**cfg.head_options, **head})


@dataclass
class History:
    epochs: list[dict[str, Any]] = field(default_factory=list)

    def log(self, **row) -> None:
        self.epochs.append(row)


# (x, lengths, labels, domains) of one batch: x is (B, L, T, D) features, the rest (B,).
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
# (model, x, lengths, y, generator) -> (x, lengths): an input-level augmentation.
Augment = Callable[[HeadModule, torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], tuple]
# (emb, y, generator) -> (emb, y2, lam): the loss becomes lam*CE(y) + (1-lam)*CE(y2) (mixup).
Mix = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple]
# (model, extra, emb, batch, epoch) -> a scalar added to the batch's emotion loss.
ExtraLoss = Callable[[HeadModule, nn.Module, torch.Tensor, Batch, int], torch.Tensor]


@dataclass
class FitHooks:
    """How a strategy changes one ``Trainer.fit`` call; every field is optional.

    ``augment`` transforms each input batch (noise, masking, time stretch); ``mix`` mixes the
    utterance embeddings and their labels (mixup); ``extra`` is a module trained alongside the
    head (its parameters join the optimiser, e.g. a domain classifier) and ``extra_loss`` a
    loss on the utterance embeddings added to the emotion loss of every batch. Random draws
    must use the ``torch.Generator`` passed in, so that a seed gives the same numbers.
    """

    augment: Augment | None = None
    mix: Mix | None = None
    extra: nn.Module | None = None
    extra_loss: ExtraLoss | None = None


class Trainer:
    """The training loop (see sercli.base.TrainerAPI for what a strategy may use).

    ``schedule`` fixes the epochs of each ``fit`` call: the i-th call trains exactly
    ``schedule[i]`` epochs and keeps its last weights (refitting on training + validation
    data with the epochs an early-stopped run found, see sercli.runs.jobs). Without it every call
    stops early on the validation UA and keeps its best weights.
    """

    def __init__(self, cfg: TrainConfig, labels: list[str], schedule: list[int] | None = None):
        self.cfg = cfg
        self.labels = labels
        if cfg.device != "cpu":
            # The CPU kernels a head uses are deterministic already (and this call costs an
            # import of several seconds); on a GPU it picks deterministic kernels, or warns.
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.history = History()
        # Epochs each fit() call trained until its best validation score, in call order (the
        # result a refit's ``schedule`` is made from).
        self.best_epochs: list[int] = []
        self.schedule: tuple[int, ...] | None = tuple(schedule) if schedule is not None else None
        # What the strategy trained on, by kind (see note_used): recorded in the run's config.
        self.used: dict[str, int] = {}

    def note_used(self, **parts: "Examples | int") -> None:
        """Record how many examples of each kind training used, e.g.
        ``trainer.note_used(synthetic=train_synthetic)``: runs report this, not what was
        available. A strategy that never calls it trained on no synthetic data."""
        for kind, part in parts.items():
            self.used[kind] = part if isinstance(part, int) else len(part)

    def new_model(self, stats_from: Examples) -> HeadModule:
        """A fresh head, standardised with statistics of ``stats_from`` (training data only)."""
        if self.cfg.finetune:  # the backbone's encoder learns with the head, on audio (sercli.learning.finetune)
            from sercli.learning.finetune import trainer_model

            return trainer_model(self, stats_from)
        seed_everything(self.cfg.seed)
        L, _, D = stats_from.features(0).shape
        targets = self.cfg.targets
        model = build_head(self.cfg.head, self.cfg.head_options, L, D, len(self.labels) + len(targets))
        if targets:  # the head learns z-scores of the targets, with the training part's statistics
            from sercli.learning.model import set_targets
            from sercli.learning.targets import stats

            set_targets(model, targets, *stats(stats_from.values))
        if self.cfg.standardize:
            mean, std = layer_stats(stats_from, seed=self.cfg.seed)
            model.mean.copy_(torch.from_numpy(mean))
            model.std.copy_(torch.from_numpy(std))
        return model.to(self.cfg.device)

    def class_weights(self, train: Examples) -> torch.Tensor | None:
        if not self.cfg.balanced or not self.labels:
            return None
        counts = np.bincount(train.labels, minlength=len(self.labels)).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
        return torch.tensor(w, dtype=torch.float32, device=self.cfg.device)

    def fit(
        self,
        model: HeadModule,
        train: Examples,
        val: Examples,
        *,
        max_epochs: int | None = None,
        stage: str = "train",
        lr: float | None = None,
        hooks: FitHooks | None = None,
    ) -> HeadModule:
        """Train ``model`` on ``train``; keep the weights with the best validation UA.

        ``max_epochs`` caps this call (default: the configured epochs), ``stage`` names it in
        the history, ``lr`` overrides the configured learning rate (fine-tuning) and ``hooks``
        change the loop (see FitHooks). Returns ``model`` itself, trained in place.

        With ``restarts`` (``--restarts N``) N more rounds follow, each starting from the weights
        the one before kept, with a new optimiser, and stopping early on its own; the model is
        the last round's best. Every round is one entry of ``best_epochs``, so a refit replays
        them all.
        """
        for r in range(1 + self.cfg.restarts):
            self._fit_round(model, train, val, max_epochs, f"{stage} (restart {r})" if r else stage, lr, hooks)
        return model

    def _fit_round(self, model: HeadModule, train: Examples, val: Examples, max_epochs: int | None, stage: str,
                   lr: float | None, hooks: FitHooks | None) -> None:
        cfg = self.cfg
        if cfg.targets:
            from sercli.learning.targets import batch_values, ccc_loss, check_hooks

            check_hooks(hooks)
        c = len(self.labels)  # the first c outputs are class logits, the others the targets' z-scores
        hooks = hooks or FitHooks()
        extra, extra_loss, augment, mix = hooks.extra, hooks.extra_loss, hooks.augment, hooks.mix
        seed_everything(cfg.seed)
        torch.set_num_threads(cfg.threads)
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        # a fine-tuned encoder learns at its own (smaller) rate: sercli.learning.finetune's param_groups
        groups = model.param_groups(lr or cfg.lr) if hasattr(model, "param_groups") else [{"params": list(model.parameters())}]
        params = groups + ([{"params": list(extra.parameters())}] if extra is not None else [])
        opt = torch.optim.AdamW(params, lr=lr or cfg.lr, weight_decay=cfg.weight_decay)
        loss_fn = nn.CrossEntropyLoss(weight=self.class_weights(train))
        best = (-1.0, float("inf"))
        best_state = copy.deepcopy(model.state_dict())
        best_epoch, bad = 0, 0
        fixed = self.schedule[len(self.best_epochs)] if self.schedule is not None else None
        for epoch in range(fixed or max_epochs or cfg.max_epochs):
            model.train()
            if extra is not None:
                extra.train()
            order = rng.permutation(len(train))
            plan = [order[i : i + cfg.batch_size].tolist() for i in range(0, len(order), cfg.batch_size)]
            total, n = 0.0, 0
            for idx in plan:
                x, lengths, y, d = (t.to(cfg.device) for t in collate(train, idx))
                head = model
                if hasattr(model, "hidden"):  # fine-tuning: the encoder's hidden states are the head's features
                    x, lengths = model.hidden(x, lengths)
                    head = model.head
                if augment is not None:
                    x, lengths = augment(head, x, lengths, y, gen)
                emb = head.embed(x, lengths)
                if mix is not None:
                    emb, y2, lam = mix(emb, y, gen)
                    logits = head.classifier(emb)
                    loss = lam * loss_fn(logits, y) + (1 - lam) * loss_fn(logits, y2)
                elif cfg.targets:
                    out = head.classifier(emb)
                    loss = ccc_loss(out[:, c:], batch_values(head, train, idx, cfg.device))
                    if c:  # multi-task: the emotion's cross-entropy beside the targets' CCC
                        loss = loss + loss_fn(out[:, :c], y)
                else:
                    loss = loss_fn(head.classifier(emb), y)
                if extra_loss is not None:
                    loss = loss + extra_loss(head, extra, emb, (x, lengths, y, d), epoch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                n += len(idx)
            val_loss, val_metrics = self.evaluate(model, val)
            shown = {f"val_{m}": val_metrics[m] for m in (("UA", "WA") if c else ()) + (("CCC",) if cfg.targets else ())}
            if c and cfg.targets:
                shown["val_score"] = val_metrics["score"]
            self.history.log(stage=stage, epoch=epoch, train_loss=total / max(n, 1), val_loss=val_loss, **shown)
            if fixed:
                continue
            score = (val_metrics["score"], val_loss)
            if score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
                best, best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
        self.best_epochs.append(best_epoch)
        if not fixed:
            model.load_state_dict(best_state)

    @torch.inference_mode()
    def predict(self, model: HeadModule, data: Examples) -> np.ndarray:
        """Class probabilities (N, C): sercli.evaluation.evaluate.probabilities, the one inference path."""
        from sercli.learning.model import probabilities

        return probabilities(model, data, self.cfg.batch_size, self.cfg.device)

    def evaluate(self, model: HeadModule, data: Examples) -> tuple[float, dict[str, Any]]:
        """(loss, metrics) on ``data``; ``metrics["score"]`` is what early stopping keeps the best
        of: the UA, or with --target the mean CCC (a multi-task head: the mean of both)."""
        probs = self.predict(model, data)
        if self.cfg.targets:
            from sercli.learning.targets import evaluate

            return evaluate(probs, data, self.labels, self.cfg.targets)
        y = np.asarray(data.labels)
        loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean()) if len(y) else 0.0
        metrics = compute_metrics(y.tolist(), probs.argmax(1).tolist(), self.labels)
        return loss, {**metrics, "score": metrics["UA"]}


def fit_strategy(strategy, trainer: Trainer, real: Examples, synthetic: Examples, val: Examples) -> HeadModule:
    """``strategy.fit(trainer, real, synthetic, val)``, its result checked: the model
    ``trainer.new_model`` made (a ``HeadModule``; fine-tuning's module with --finetune). Anything
    else is one line naming the strategy's plugin, not a failure further on."""
    from sercli.core.errors import SercliError
    from sercli.core.plugins import describe

    model = strategy.fit(trainer, real, synthetic, val)
    if not isinstance(model, nn.Module if trainer.cfg.finetune else HeadModule):
        shown = " ".join(repr(model).split())[:60]
        raise SercliError(f"{describe('strategy', strategy)}: fit returned {type(model).__name__} {shown}, not the "
                          "trained model (return trainer.fit(trainer.new_model(...), ...); a bug in the strategy)")
    return model


# -- checkpoints: safetensors weights + a JSON config that describes them ----------------

def save_model(model: HeadModule, run_dir: Path, config: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from sercli.core.fsutil import atomic_write_text

    run_dir.mkdir(parents=True, exist_ok=True)
    # a fine-tuned model keeps only what changed: the trainable encoder tensors and the head
    weights = model.saved_state() if hasattr(model, "saved_state") else model.state_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    save_file(state, str(run_dir / "model.safetensors"))
    atomic_write_text(run_dir / "config.json", json.dumps({"head": model.config, **config}, indent=2))


# What every stage reads from a job's config.json (a file without them is damaged).
CONFIG_KEYS = ("head", "labels", "features", "train", "speakers", "strategy")


def load_config(run_dir: Path) -> dict[str, Any]:
    """A job's config.json, or one line naming the file when it is missing or damaged."""
    from sercli.core.errors import SercliError
    from sercli.core.runfolder import damaged, own_file, read_json

    cfg_path = own_file(Path(run_dir) / "config.json")
    if not cfg_path.exists():
        raise SercliError(f"{run_dir} is not a sercli run folder (no config.json): run `sercli train` first")
    config = read_json(cfg_path)
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise damaged(cfg_path, f"no {', '.join(missing)}")
    if not isinstance(config["labels"], list) or not isinstance(config["head"], dict):
        raise damaged(cfg_path, "labels or head of the wrong type")
    return config


def load_model(run_dir: Path) -> tuple[HeadModule, dict[str, Any]]:
    from safetensors.torch import load_file

    from sercli.core.errors import SercliError
    from sercli.learning.finetune import is_finetuned
    from sercli.learning.finetune import load as finetune_load
    from sercli.core.guards import check_weights
    from sercli.core.runfolder import damaged, own_file

    config = load_config(run_dir)
    head = dict(config["head"])
    if "name" not in head:  # written before heads were plugins: the mlp head, options alongside
        head = {"name": "mlp", "options": {k: head.pop(k) for k in ("hidden", "dropout", "pool") if k in head}, **head}
    try:
        model = build_head(head["name"], head.get("options") or {}, head["num_layers"], head["dim"],
                           head["num_classes"])
        if head.get("targets"):  # a head with dimensional targets: their names and training statistics
            from sercli.learning.model import set_targets

            set_targets(model, head["targets"], head["target_mean"], head["target_std"])
    except SercliError as exc:
        raise SercliError(f"{run_dir}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise damaged(Path(run_dir) / "config.json", f"its head does not describe a model: {exc}") from None
    weights = own_file(Path(run_dir) / "model.safetensors")
    if not weights.exists():
        raise SercliError(f"{weights}: no such file; train the run again")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors reports a torn file as its own error type
        raise damaged(weights, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    try:
        if is_finetuned(config):  # the backbone loaded anew, then its adapters or top layers from the file
            model = finetune_load(model, config, state)
        else:
            model.load_state_dict(state)
    except (RuntimeError, ValueError) as exc:
        raise damaged(weights, f"its weights do not fit the head in config.json: {str(exc).splitlines()[0]}") from None
    check_weights(model, run_dir)  # a model trained on NaN (by an older sercli) predicts nothing
    model.eval()
    return model, config


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)
