"""Speaker normalisation (`train --norm speaker`): each utterance's features standardised with
its own speaker's statistics.

For every speaker of a part, the mean and standard deviation of each layer and dimension are
taken over all the frames of that speaker's utterances *in the same part*: the training
speakers' from the training data, the validation speakers' from the validation part, the test
speaker's from its own test utterances, and at prediction time from the records given,
grouped by speaker. Only features are read, never an emotion, so normalising a test part
uses nothing a deployed model would not have: a set of unlabelled utterances of one speaker.

A speaker needs at least ``MIN_UTTERANCES`` utterances in a part for its statistics to mean
anything; fewer, or a record without a speaker, is refused with one line.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from sercli.core.errors import SercliError

MIN_UTTERANCES = 5
STD_FLOOR = 1e-5  # the smallest std a dimension is divided by
# A dimension whose std over a speaker's frames is at most CONSTANT_SHARE of its root mean square
# is taken as constant for that speaker and reads as 0. Its variation is at the level of the
# numeric noise that differs between two implementations of the same encoder: whisper's input
# layer, mean-pooled over clips of one length (its position table), has dimensions of value 8e-3
# that vary by 1e-5 within a speaker, while PyTorch and onnxruntime differ there by up to 1.7e-5
# (cancellation in the conv stem), or round to different float16 neighbours. Divided by that std,
# the noise became a whole unit of the standardised feature. Measured on 20 EmoDB clips
# (whisper-tiny.en, all layers, mean+std): the largest std/RMS of such a dimension was 1.7e-3;
# with a share of 1e-3 the exported probabilities differed from the run's by 5e-3 (float16
# store) and 2e-3 (float32); from 2e-3 on, by 6e-5 at most. The share is twice that.
CONSTANT_SHARE = 4e-3

Record = dict[str, Any]
Stats = tuple[np.ndarray, np.ndarray]  # (mean, std), each (layers, dim) float32


class TooFewUtterances(SercliError):
    """A part cannot be normalised speaker by speaker (``--norm auto`` then falls back to none)."""


def speakers_of(records: Sequence[Record], where: str) -> list[str]:
    """Each record's speaker; SercliError naming the first record without one, or the first
    speaker with fewer than MIN_UTTERANCES records."""
    speakers = []
    for rec in records:
        spk = rec.get("speaker")
        if spk is None or str(spk) == "":
            raise TooFewUtterances(f"{where}: record {rec.get('id')!r} has no speaker; --norm speaker standardises "
                              "each speaker's features: give every record a speaker field")
        speakers.append(str(spk))
    counts: dict[str, int] = {}
    for spk in speakers:
        counts[spk] = counts.get(spk, 0) + 1
    for spk, n in counts.items():
        if n < MIN_UTTERANCES:
            raise TooFewUtterances(f"{where}: speaker {spk!r} has {n} utterance{'s' * (n != 1)}, --norm speaker needs "
                              f"at least {MIN_UTTERANCES} per speaker: give more of them, or leave out --norm speaker")
    return speakers


def speaker_stats(speakers: Sequence[str], features: Callable[[int], np.ndarray]) -> dict[str, Stats]:
    """speaker -> per-layer, per-dimension (mean, std) over the frames of their utterances;
    ``features(i)`` is item i's (layers, frames, dim) array."""
    sums: dict[str, list] = {}
    for i, spk in enumerate(speakers):
        f = features(i).astype(np.float64)
        acc = sums.setdefault(spk, [0.0, 0.0, 0])
        acc[0] = acc[0] + f.sum(1)
        acc[1] = acc[1] + (f**2).sum(1)
        acc[2] += f.shape[1]
    out = {}
    for spk, (s, s2, n) in sums.items():
        mean = s / n
        std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
        constant = std <= CONSTANT_SHARE * np.sqrt(s2 / n)
        std = np.where(constant, np.inf, np.maximum(std, STD_FLOOR))  # x / inf: exactly 0
        out[spk] = (mean.astype(np.float32), std.astype(np.float32))
    return out


def normalizers(records: Sequence[Record], features: Callable[[int], np.ndarray], where: str) -> list[Stats]:
    """The (mean, std) each record is standardised with: its speaker's, over ``records``."""
    speakers = speakers_of(records, where)
    stats = speaker_stats(speakers, features)
    return [stats[spk] for spk in speakers]


def normalise(x: np.ndarray, stats: Stats) -> np.ndarray:
    """(layers, frames, dim) features standardised with (mean, std) of shape (layers, dim)."""
    mean, std = stats
    return ((x - mean[:, None, :]) / std[:, None, :]).astype(np.float32)


def apply(examples, where: str):
    """``examples`` (`sercli.learning.data.Examples`, one part) with every utterance read through its
    speaker's statistics over this part."""
    from sercli.features.read import read_features

    if not len(examples):
        return examples
    records = examples.records
    return replace(examples, norm=normalizers(records, lambda i: read_features(records[i]), where))


def apply_arrays(records: Sequence[Record], arrays: Sequence[np.ndarray], where: str) -> list[np.ndarray]:
    """In-memory features of ``records`` (prediction) standardised speaker by speaker."""
    stats = normalizers(records, lambda i: arrays[i], where)
    return [normalise(x, s) for x, s in zip(arrays, stats)]
