"""The offline ``template`` LLM backend: volume, determinism, exclusion, errors."""

from __future__ import annotations

import re

import pytest

from sercli.core import plugins as pl
from sercli.base import validate_options
from sercli.core.errors import SercliError
from sercli_template import grammar
from sercli_template.backend import TemplateBackend

IEMOCAP = ["angry", "happy", "neutral", "sad"]
# The emotion named outright: allowed now and then, but the sentences should carry it themselves.
NAMED = {
    "angry": r"\b(angry|anger)\b", "happy": r"\b(happy|happiness)\b", "neutral": r"\bneutral\b",
    "sad": r"\b(sad|sadness)\b", "fear": r"\b(fear|afraid|scared)\b", "disgust": r"\bdisgust",
    "surprise": r"\bsurpris", "calm": r"\bcalm\b", "boredom": r"\bbor(ed|ing|edom)\b",
}


def take(emotion, n, seed=0, exclude=(), **options):
    backend = TemplateBackend(options=TemplateBackend.Options(**options))
    return list(backend.generate(emotion, n, seed=seed, exclude=set(exclude)))


def test_registered_through_the_entry_point(monkeypatch):
    monkeypatch.setenv("SERCLI_LOAD_PLUGINS", "template")
    pl.reset()
    try:
        backend = pl.create("llm", "template", {"max_words": "12"})
    finally:
        pl.reset()
    assert isinstance(backend, TemplateBackend) and backend.options.max_words == 12
    assert backend.estimate("angry", 1000) == {"requests": 0, "characters": 0}


def test_every_canonical_emotion_has_a_bank():
    assert set(grammar.emotions()) == set(NAMED)


@pytest.mark.parametrize("emotion", IEMOCAP + ["fear", "disgust", "surprise", "calm", "boredom"])
def test_300_distinct_sentences_of_5_to_20_words(emotion):
    sentences = take(emotion, 300)
    assert len(sentences) == 300
    assert len({s.lower() for s in sentences}) == 300
    for s in sentences:
        assert 5 <= len(s.split()) <= 20, s
        assert s[0].isupper() and s[-1] in ".!?", s
        assert "{" not in s and "  " not in s and " ," not in s, s
    named = [s for s in sentences if re.search(NAMED[emotion], s, re.I)]
    assert len(named) <= 15, named[:5]


def test_same_seed_same_sentences_other_seed_other_order():
    assert take("happy", 40, seed=7) == take("happy", 40, seed=7)
    assert take("happy", 40, seed=7) != take("happy", 40, seed=8)


def test_exclude_is_respected_and_a_resumed_run_continues_the_stream():
    first = take("sad", 30, seed=3)
    resumed = take("sad", 20, seed=3, exclude=first[:10])
    assert resumed == first[10:30]
    # Matching ignores case and spacing, as gen-text's deduplication does.
    shouty = {"  " + s.upper() for s in first}
    assert not set(take("sad", 30, seed=3, exclude=shouty)) & set(first)


def test_word_limits_and_a_bank_that_runs_dry():
    short = take("neutral", 100_000, min_words=5, max_words=6)
    assert 0 < len(short) < 100_000
    assert all(5 <= len(s.split()) <= 6 for s in short)


def test_unknown_emotion_names_the_known_ones():
    with pytest.raises(SercliError, match=r"'joyful'.*Known: angry, boredom, calm"):
        take("joyful", 3)


def test_bad_word_limits_are_a_clear_option_error():
    with pytest.raises(SercliError, match="min_words"):
        validate_options(TemplateBackend, {"min_words": "12", "max_words": "8"}, "LLM backend 'template'")


def test_provenance_records_the_bank_version():
    prov = TemplateBackend().provenance()
    assert prov["plugin"] == "template" and re.fullmatch(r"[0-9a-f]{12}", prov["banks"])


def test_other_languages_keep_english_as_it_was():
    """English ids, stream and bank digest do not change when other languages are added."""
    english = TemplateBackend(options=TemplateBackend.Options(language="en"))
    assert list(english.generate("sad", 10, seed=3, exclude=set())) == take("sad", 10, seed=3)
    assert english.provenance()["banks"] == TemplateBackend().provenance()["banks"]
    german = TemplateBackend(options=TemplateBackend.Options(language="de"))
    assert german.provenance()["banks"] != english.provenance()["banks"]
    assert german.language() == "de" and english.language() == "en"


def test_tidy_capitalises_sentence_starts_in_any_script():
    assert grammar.tidy("über alles. ähm, ja! è vero") == "Über alles. Ähm, ja! È vero"
    assert grammar.tidy("¿qué pasa? ¡ay , no !") == "¿Qué pasa? ¡Ay, no!"
