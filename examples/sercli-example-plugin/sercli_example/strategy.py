"""Strategy `balance`: synthetic utterances fill up the classes that have fewer real ones."""

from __future__ import annotations

from sercli.api import Strategy


class Balance(Strategy):
    name = "balance"
    description = "Add synthetic utterances to the rarer classes until each has as many as the largest (example plugin)."

    def fit(self, trainer, real, synthetic, val):
        import numpy as np

        counts = np.bincount(real.labels, minlength=len(trainer.labels))
        target = int(counts.max()) if len(counts) else 0
        picked: list[int] = []
        for label, have in enumerate(counts):
            spare = np.flatnonzero(np.asarray(synthetic.labels) == label) if len(synthetic) else []
            picked += [int(i) for i in spare[: max(0, target - int(have))]]
        used = synthetic.subset(sorted(picked))
        train = real + used if picked else real
        trainer.note_used(synthetic=used)  # the run reports what training used
        model = trainer.new_model(train)
        return trainer.fit(model, train, val, stage=f"balance(+{len(picked)} synthetic)")
