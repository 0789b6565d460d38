from __future__ import annotations

import warnings

import numpy as np

from sercli.base import Backbone
from sercli.core.errors import RecordError


class _Smile(Backbone):
    level = "utterance"
    store_dtype = "float32"  # ComParE functionals exceed float16's range
    feature_set = ""

    def load(self, device: str = "cpu") -> None:
        import opensmile

        self._smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, self.feature_set),
            feature_level=opensmile.FeatureLevel.Functionals,
        )

    def forward(self, wavs, device: str = "cpu"):
        import torch

        outs = []
        for wav in wavs:
            with warnings.catch_warnings():  # "Segment too short, filling with NaN": said below
                warnings.simplefilter("ignore", UserWarning)
                row = self._smile.process_signal(wav, self.sample_rate).to_numpy()[0]
            bad = int((~np.isfinite(row)).sum())
            if bad:  # openSMILE gives NaN functionals for clips shorter than its ~60 ms windows
                ms = len(wav) * 1000 / self.sample_rate
                why = " (too short: openSMILE needs about 60 ms)" if ms < 100 else ""
                raise RecordError(f"non-finite features: openSMILE gives {bad} of {len(row)} {self.feature_set} "
                                  f"functionals as NaN or infinity for this {ms:.0f} ms clip{why}")
            outs.append(torch.from_numpy(row.astype("float32")).view(1, 1, -1))
        return outs

    def identity(self):
        import opensmile

        return {**self.provenance(), "feature_set": self.feature_set, "opensmile": opensmile.__version__}


class EGeMAPS(_Smile):
    name = "egemaps"
    description = "openSMILE eGeMAPSv02 functionals (88 per utterance)."
    feature_set = "eGeMAPSv02"


class ComParE(_Smile):
    name = "compare"
    description = "openSMILE ComParE_2016 functionals (6373 per utterance)."
    feature_set = "ComParE_2016"
