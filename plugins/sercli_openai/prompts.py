"""Prompts for emotionally congruent everyday sentences, and robust parsing of the replies.

Design (after Ma et al., arXiv 2309.10294, who asked GPT-4 for emotional daily-conversation
text): one request asks for K sentences of one emotion; the emotion must be conveyed by the
situation and the wording, never by naming it; each request draws its own topic and speakers
from the seed, so batches differ instead of converging on the model's favourite sentence; a
few earlier sentences are shown as "do not repeat". The reply is JSON ``{"sentences": [...]}``.
"""

from __future__ import annotations

import json
import random
import re

from sercli.api import emotion_key

# How each emotion is described to the model (canonical sercli labels; others are used as is).
DESCRIPTIONS = {
    "angry": "angry (irritated, annoyed, furious)",
    "happy": "happy (joyful, delighted, pleased)",
    "sad": "sad (sorrowful, disappointed, down)",
    "neutral": "neutral (calm and matter-of-fact, no particular emotion)",
    "fear": "afraid (scared, anxious, nervous)",
    "disgust": "disgusted (repelled, grossed out)",
    "surprise": "surprised (astonished, caught off guard)",
    "calm": "calm (relaxed, at ease)",
    "boredom": "bored (uninterested, weary)",
    "contempt": "contemptuous (scornful, looking down on someone)",
    "excited": "excited (thrilled, eager)",
    "frustrated": "frustrated (stuck, exasperated)",
}

# Words that would name the emotion outright; a sentence containing one is dropped.
NAMING = {
    "angry": ("angry", "anger", "angrily"),
    "happy": ("happy", "happiness", "happily"),
    "sad": ("sad", "sadness", "sadly"),
    "fear": ("fear", "afraid", "scared", "frightened"),
    "disgust": ("disgust", "disgusted", "disgusting"),
    "surprise": ("surprise", "surprised", "surprising"),
    "calm": ("calm",),
    "boredom": ("bored", "boredom", "boring"),
    "contempt": ("contempt",),
    "excited": ("excited", "excitement"),
    "frustrated": ("frustrated", "frustration", "frustrating"),
}

TOPICS = (
    "work and colleagues", "family at home", "cooking and meals", "shopping", "travel and holidays",
    "the weather", "health and doctors", "school and homework", "sports and games", "neighbours",
    "money and bills", "pets", "phones and computers", "friends", "commuting and traffic",
    "moving house", "a birthday or a wedding", "repairs around the house", "a restaurant",
    "a phone call with customer service", "news heard on the radio", "a lost item",
    "a job interview", "a visit to relatives", "public transport", "a package delivery",
)
SPEAKERS = (
    "a teenager", "a retired teacher", "a nurse", "a shop owner", "a parent of small children",
    "a university student", "a bus driver", "an office worker", "a grandmother", "a chef",
    "a farmer", "a mechanic", "a new employee", "a neighbour", "a tourist", "a coach",
    "a software developer", "a waiter", "a landlord", "a young couple",
)

SYSTEM = (
    "You write lines of everyday spoken dialogue for an emotional speech dataset. Each line is "
    "something one person says out loud to another in daily life: natural spoken {language}, "
    "self-contained, no speaker names, no stage directions, no quotation marks, no emojis. "
    "The emotion must come through in what is said (the situation, the word choice, the "
    "phrasing) and never by naming the emotion. Always answer with JSON only."
)

USER = (
    'Write {k} different sentences that a person would say when they feel {description}. '
    'The emotion is "{emotion}".\n'
    "Rules:\n"
    "- Each sentence has between {min_words} and {max_words} words.\n"
    "- Never use the word {emotion!r} or a synonym of it: a listener must infer the feeling "
    "from the content and the tone alone.\n"
    "- Vary the situation and the speaker: these sentences are about {topic}, said by people "
    "such as {speakers}.\n"
    "- Mix statements, questions and exclamations; no two sentences may share their opening words.\n"
    "{avoid}"
    'Answer with JSON: {{"sentences": ["...", "..."]}}'
)

CHECK_SYSTEM = (
    "You are an annotator of emotional speech. For a sentence spoken aloud, you decide which "
    "emotion a listener would most likely perceive from its words. Always answer with JSON only."
)
CHECK_USER = (
    "Label each sentence with exactly one emotion from this list: {labels}. "
    'The intended emotion is "{emotion}", but label what the words convey; if they do not '
    "clearly convey an emotion, use neutral.\n"
    "Sentences:\n{sentences}\n"
    'Answer with JSON: {{"labels": ["...", ...]}}, one label per sentence, in the same order.'
)

SENTENCES_SCHEMA = {
    "name": "sentences",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"sentences": {"type": "array", "items": {"type": "string"}}},
        "required": ["sentences"],
        "additionalProperties": False,
    },
}
LABELS_SCHEMA = {
    "name": "emotion_labels",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"labels": {"type": "array", "items": {"type": "string"}}},
        "required": ["labels"],
        "additionalProperties": False,
    },
}


class Malformed(ValueError):
    """The model's reply could not be read as the JSON asked for."""


# An emotion's spellings (anger, joy, bored...) are sercli's (sercli.core.labels.SYNONYMS).
canonical = emotion_key


def generation_messages(
    emotion: str, k: int, *, rng: random.Random, min_words: int, max_words: int,
    avoid: list[str], language: str,
) -> list[dict[str, str]]:
    key = canonical(emotion)
    avoid_text = ""
    if avoid:
        avoid_text = ("- Do not repeat or closely paraphrase any of these earlier sentences:\n"
                      + "".join(f"  * {s}\n" for s in avoid))
    user = USER.format(
        k=k, emotion=emotion, description=DESCRIPTIONS.get(key, emotion), min_words=min_words,
        max_words=max_words, topic=rng.choice(TOPICS), speakers=", ".join(rng.sample(SPEAKERS, 3)),
        avoid=avoid_text,
    )
    return [{"role": "system", "content": SYSTEM.format(language=language)},
            {"role": "user", "content": user}]


def check_messages(emotion: str, sentences: list[str], labels: list[str]) -> list[dict[str, str]]:
    user = CHECK_USER.format(labels=", ".join(labels), emotion=emotion,
                             sentences=json.dumps(sentences, ensure_ascii=False))
    return [{"role": "system", "content": CHECK_SYSTEM}, {"role": "user", "content": user}]


def names_emotion(sentence: str, emotion: str) -> bool:
    words = set(re.findall(r"[a-z]+", sentence.lower()))
    return any(w in words for w in NAMING.get(canonical(emotion), (canonical(emotion),)))


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_BULLET = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")


def _load_json(content: str | None):
    """JSON from a reply that may be wrapped in a code fence or in prose."""
    if not content or not content.strip():
        raise Malformed("empty reply")
    text = _FENCE.sub("", content.strip())
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            try:
                return json.loads(text[start:end + 1])
            except json.JSONDecodeError:
                continue
    raise Malformed(f"not JSON: {content[:80]!r}")


def _list_in(data, key: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if isinstance(data.get(key), list):
            return data[key]
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    raise Malformed(f"no {key!r} list in the reply")


def clean(sentence: str) -> str:
    text = _BULLET.sub("", " ".join(sentence.split()))
    return text.strip().strip("\"'\u201c\u201d").strip()


def parse_sentences(content: str | None) -> list[str]:
    items = _list_in(_load_json(content), "sentences")
    out = []
    for item in items:
        if isinstance(item, dict):  # {"text": ...} or {"sentence": ...}
            item = item.get("text") or item.get("sentence") or ""
        if isinstance(item, str) and clean(item):
            out.append(clean(item))
    if not out:
        raise Malformed("the reply holds no sentences")
    return out


def parse_labels(content: str | None, expected: int) -> list[str]:
    labels = [canonical(str(x)) for x in _list_in(_load_json(content), "labels")]
    if len(labels) != expected:
        raise Malformed(f"{len(labels)} labels for {expected} sentences")
    return labels
