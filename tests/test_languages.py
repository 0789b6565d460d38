"""Language-matched offline synthesis: the template backend writes German and Italian (checked
by word lists and a language detector, never by the generator's own banks), records carry their
language through gen-text and synthesize, and espeak speaks them with voices of that language."""

from __future__ import annotations

import json
import re

import pytest
import soundfile as sf

from conftest import run_here
from sercli.core.errors import SercliError
from sercli_template import grammar
from sercli_template.backend import TemplateBackend

# The most frequent function words of each language (articles, pronouns, auxiliaries,
# prepositions, conjunctions), from general frequency lists, independent of the phrase banks.
FUNCTION_WORDS = {
    "de": set("der die das den dem des ein eine einen einem einer und oder aber nicht ich du er sie es wir ihr "
              "mich mir dich dir uns ist bin bist sind war hat habe hast haben wird werden mit von zu auf "
              "für aus bei nach seit noch schon auch nur wie was wenn dass ob so da hier mein meine meinen "
              "dein deine sich im am um vor".split()),
    "en": set("the a an and or but not i you he she it we they me him her us is am are was were has have had "
              "will with of to on for from at after since still already also only how what if that so there "
              "here my your our this in by be do did don't can".split()),
    "it": set("il lo la i gli le un una uno e o ma non io tu lui lei noi voi mi ti ci si è sono ho hai ha "
              "abbiamo con di da in su per tra che come se anche già ancora solo qui mio mia tuo tua del "
              "della al alla nel nella".split()),
}
EMODB = ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
EMOVO = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def sentences(language: str, emotion: str, n: int = 60, seed: int = 0) -> list[str]:
    backend = TemplateBackend(options=TemplateBackend.Options(language=language))
    return list(backend.generate(emotion, n, seed=seed, exclude=set()))


def share(texts: list[str], language: str) -> float:
    words = [w.lower() for t in texts for w in _WORD.findall(t)]
    return sum(w in FUNCTION_WORDS[language] for w in words) / len(words)


def mid_sentence_capitals(texts: list[str]) -> float:
    """Share of words inside a sentence (not its first) written with a capital: German writes
    every noun so, English and Italian only names."""
    inner = [w for t in texts for part in re.split(r"[.!?]\s+", t) for w in _WORD.findall(part)[1:]]
    return sum(w[0].isupper() for w in inner) / len(inner)


@pytest.mark.parametrize("emotion", EMODB)
def test_german_sentences_use_german_words(emotion):
    texts = sentences("de", emotion)
    assert len(texts) == 60 and len(set(texts)) == 60
    german, english, italian = share(texts, "de"), share(texts, "en"), share(texts, "it")
    assert german > 3 * english and german > 3 * italian, (german, english, italian)
    for t in texts:
        assert t[0].isupper() and t[-1] in ".!?" and "{" not in t and "  " not in t, t


@pytest.mark.parametrize("emotion", EMOVO)
def test_italian_sentences_use_italian_words(emotion):
    texts = sentences("it", emotion)
    italian, english, german = share(texts, "it"), share(texts, "en"), share(texts, "de")
    assert italian > 3 * english and italian > 3 * german, (italian, english, german)


def test_german_capitalises_nouns_as_english_does_not():
    german = [t for e in EMODB for t in sentences("de", e, 40)]
    english = [t for e in EMODB for t in sentences("en", e, 40)]
    assert mid_sentence_capitals(german) > 3 * mid_sentence_capitals(english)


def test_a_language_detector_agrees():
    langdetect = pytest.importorskip("langdetect")
    langdetect.DetectorFactory.seed = 0
    for language, emotions in (("de", EMODB), ("it", EMOVO)):
        texts = [t for e in emotions for t in sentences(language, e, 20)]
        found = [langdetect.detect(t) for t in texts]
        wrong = [(t, f) for t, f in zip(texts, found) if f != language]
        assert len(wrong) <= len(texts) // 20, wrong[:5]  # a short exclamation may fool it now and then


def test_german_word_order_verb_last_in_subordinate_clauses():
    """A dass/ob/wenn clause ends with its finite verb, as German grammar wants (English
    order would end it with an object, a capitalised noun): its last word is written in lower
    case with a verb ending (-t, -st, -e, -en), or is an irregular finite form."""
    irregular = {"ist", "hat", "kann", "soll", "muss", "darf", "war", "will", "weiß", "bin", "sind", "sein"}
    verb_form = re.compile(r"^[a-zäöüß]+(t|st|e|en|n)$")
    clauses = [m.group(1) for e in EMODB + ("surprise", "calm") for t in sentences("de", e, 300)
               for m in re.finditer(r"\b(?:dass|ob|wenn|Wenn)\s+([^,.!?]+)", t)]
    assert len(clauses) > 20
    odd = [c for c in clauses if not (c.split()[-1] in irregular or verb_form.match(c.split()[-1]))]
    assert not odd, odd[:5]


def test_languages_have_their_own_streams_and_ids(tmp_path):
    assert {"en", "de", "it"} <= set(grammar.languages())
    assert set(grammar.emotions("de")) >= set(EMODB) and set(grammar.emotions("it")) >= set(EMOVO)
    out = tmp_path / "de.jsonl"
    proc = run_here("gen-text", "-b", "template", "--language", "de", "-e", "angry,sad", "-n", "5", "-o", out)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 10 and {r["language"] for r in recs} == {"de"}
    assert all(r["provenance"]["gen_text"]["options"]["language"] == "de" for r in recs)
    # resuming the same file continues it; another language is refused, not mixed in
    again = run_here("gen-text", "-b", "template", "--language", "de", "-e", "angry,sad", "-n", "6", "-o", out)
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 12
    other = run_here("gen-text", "-b", "template", "--language", "it", "-e", "angry,sad", "-n", "6", "-o", out)
    assert other.returncode == 1 and "other settings" in other.stderr
    en = run_here("gen-text", "-e", "angry", "-n", "2")
    assert {json.loads(line)["language"] for line in en.stdout.splitlines()} == {"en"}


def test_unknown_language_or_emotion_is_one_clear_line():
    proc = run_here("gen-text", "--language", "xx", "-n", "1")
    assert proc.returncode == 1 and "no phrase banks in 'xx'" in proc.stderr and "known: de, en, it" in proc.stderr
    assert TemplateBackend.Options(language="de-AT").language == "de"  # a region of a language we write
    with pytest.raises(SercliError, match="no phrase bank for emotion 'calm' in language 'it'"):
        sentences("it", "calm")


def test_german_text_is_spoken_by_german_voices(tmp_path):
    texts = run_here("gen-text", "--language", "de", "-e", "angry,neutral", "-n", "2", check=True).stdout
    proc = run_here("synthesize", "-d", tmp_path / "audio", "--voices-per-text", "2", input=texts)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(recs) == 8 and {r["language"] for r in recs} == {"de"}
    assert all(r["voice"].split("+")[0] == "de" for r in recs), [r["voice"] for r in recs]
    for r in recs:
        info = sf.info(r["audio"])
        assert info.samplerate == 16000 and info.duration > 1.0


def test_a_language_espeak_lacks_is_refused_before_any_audio(tmp_path):
    rec = {"id": "x", "emotion": "sad", "text": "Kia ora.", "language": "xx"}
    proc = run_here("synthesize", "-d", tmp_path / "audio", input=json.dumps(rec) + "\n")
    assert proc.returncode == 1 and "espeak-ng has no voice for language 'xx'" in proc.stderr
    assert not list((tmp_path / "audio").glob("*.wav"))
