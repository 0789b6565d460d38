"""The engine tools in sercli.api (sercli.synthesis.voicing) that the piper and hibari engines
share: an emotion's settings scaled from neutral, spoken text, seeds, sentences with pauses."""

from dataclasses import dataclass

import numpy as np
import pytest

from sercli.api import RecordError, SercliError, join_sentences, package_versions, scaled_style, spoken_text, \
    utterance_seed


@dataclass(frozen=True)
class Style:
    speed: float = 1.0
    pause: float = 0.2
    label: str = "x"  # a field the limits do not name is the emotion's own


TABLE = {"neutral": Style(), "sad": Style(speed=0.8, pause=0.5, label="slow"), "angry": Style(speed=1.3, pause=0.1)}
LIMITS = {"speed": (0.5, 1.5), "pause": (0.0, 2.0)}


def test_a_style_is_moved_from_neutral_by_the_scale_and_clamped():
    assert scaled_style(TABLE, "sad", 1.0, LIMITS, "e") == Style(speed=0.8, pause=0.5, label="slow")
    assert scaled_style(TABLE, "sad", 0.0, LIMITS, "e") == Style(speed=1.0, pause=0.2, label="slow")
    half = scaled_style(TABLE, "sad", 0.5, LIMITS, "e")
    assert half.speed == pytest.approx(0.9) and half.pause == pytest.approx(0.35)
    assert scaled_style(TABLE, "angry", 3.0, LIMITS, "e").speed == 1.5  # 1.9, clamped
    assert scaled_style(TABLE, "angry", 3.0, LIMITS, "e").pause == 0.0  # -0.1, clamped


def test_an_unknown_emotion_names_the_engine_and_the_emotions_it_knows():
    with pytest.raises(SercliError, match="eng has no settings for emotion 'fear'. Known: neutral, sad, angry"):
        scaled_style(TABLE, "fear", 1.0, LIMITS, "eng")


def test_spoken_text_seeds_and_sentences():
    assert spoken_text(" Hello,\tworld\x00 again \n") == "Hello, world again"
    with pytest.raises(RecordError, match="empty text"):
        spoken_text(" \x07\n ")
    assert utterance_seed("a", "sad", "v", 0) == utterance_seed("a", "sad", "v", 0)
    assert len({utterance_seed("a", "sad", "v", s) for s in range(50)}) == 50
    assert 0 <= utterance_seed("a", "sad", "v", 0) < 2**31
    wav = join_sentences([np.ones(3), 2 * np.ones(2)], 0.5, 4)
    assert wav.dtype == np.float32 and wav.tolist() == [1, 1, 1, 0, 0, 2, 2]
    assert join_sentences([np.ones(3)], 0.5, 4).tolist() == [1, 1, 1]


def test_a_missing_package_names_the_install():
    assert package_versions(["numpy"], "e", "pip install x") == {"numpy": np.__version__}
    with pytest.raises(SercliError, match="the e engine needs no-such-dist-here: pip install x"):
        package_versions(["no-such-dist-here"], "e", "pip install x")
