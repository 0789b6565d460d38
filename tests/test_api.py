"""sercli.api, the one module plugin authors import helpers from, and the helpers it unites."""

from __future__ import annotations

import subprocess
import sys

import sercli.api as api
from sercli.core.labels import CANONICAL


def test_every_public_name_resolves():
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert set(api.RECORD_FIELDS) >= {"id", "audio", "emotion", "speaker", "features"}


def test_importing_the_api_is_cheap():
    code = "import sys, sercli.api; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_one_idea_of_the_same_sentence():
    key = api.same_sentence_key
    assert key("Don't  GO!") == key("don't go") == key("Don\u2019t go.") and key("Stop.") != key("Stop now.")
    from sercli.learning.cv import normalise_text

    assert normalise_text is key


def test_emotion_names_come_from_one_table():
    assert api.EMOTIONS == CANONICAL
    assert api.canonical("Happiness") == "happy" and api.canonical("whatever") is None
    assert api.emotion_key("Joy") == "happy" and api.emotion_key(" Whatever ") == "whatever"
    from sercli_azure.styles import canonical as azure
    from sercli_openai.prompts import canonical as openai

    assert azure("ps") == openai("ps") == "surprise" and openai("bored") == azure("bored") == "boredom"


def test_backoff_doubles_up_to_the_cap():
    for attempt in range(8):
        d = api.backoff_delay(attempt, 1.0)
        assert 0.5 * min(30, 2**attempt) <= d <= min(30, 2**attempt)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    try:
        with api.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    except RuntimeError:
        pass
    assert not list(tmp_path.iterdir())
    api.atomic_write_text(target, "whole")
    assert target.read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_torn_tail_repair(tmp_path):
    from sercli.core.fsutil import repair_torn_tail

    p = tmp_path / "x.jsonl"
    for data, want in ((b"", b""), (b"a\n", b"a\n"), (b"a\nb", b"a\n"), (b"ab", b"")):
        p.write_bytes(data)
        repair_torn_tail(p)
        assert p.read_bytes() == want
