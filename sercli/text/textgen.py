"""The engine of `sercli gen-text`: plan (resume from -o FILE), estimate (--dry-run), generate.

With an output file the run is resumable: sentences already there count towards N if the same
backend, options and seed made them, and only the missing ones are requested. The file is
append-only, so paid results are never lost; duplicates within and across runs are dropped.

Each record carries the ``language`` of its sentence (a BCP-47 code such as ``en`` or ``de``):
what the backend's ``language()`` says, else its ``language`` option when that is a code.
"""

from __future__ import annotations

import hashlib
import json
import re

from sercli.core.errors import RecordError, SercliError
from sercli.core.log import info, progress, warn
from sercli.core.records import open_writer, output_lock, read_existing


def run(llm, backend: str, wanted: list[str], n: int, output, seed: int, dry_run: bool = False) -> None:
    """Write ``n`` sentences per emotion in ``wanted`` to ``output`` (None: stdout), or with
    ``dry_run`` only say what that would cost."""
    if not wanted:
        raise SercliError("--emotions is empty")
    llm.check(wanted)  # every emotion, before any sentence is written (or paid for)
    prov = {**llm.provenance(), "seed": seed}
    if dry_run:
        _run(llm, backend, wanted, n, prov, output, seed, dry_run=True)
    else:
        with output_lock(output):  # a second run on the same file would write (and pay) twice
            _run(llm, backend, wanted, n, prov, output, seed, dry_run=False)


_CODE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")
# a backend whose option names the language in words (openai: language=German)
_NAMES = {"english": "en", "german": "de", "deutsch": "de", "italian": "it", "italiano": "it",
          "french": "fr", "français": "fr", "spanish": "es", "español": "es"}


def language_of(llm) -> str | None:
    """The BCP-47 code of the sentences ``llm`` writes: its ``language()`` method, else its
    ``language`` option when that is a code (``de``, not ``German``), else None (unknown)."""
    said = getattr(llm, "language", None)
    if callable(said):
        return said()
    option = str(getattr(llm.options, "language", "") or "").strip().lower()
    return _NAMES.get(option) or (option if _CODE.fullmatch(option) else None)


def sentence_id(emotion: str, text: str, language: str | None) -> str:
    """A record's id: the emotion and a hash of the sentence, and of its language unless it is
    English or unknown (so English ids stay those of earlier runs)."""
    key = _norm(text) if language in (None, "en") else f"{language}\n{_norm(text)}"
    return f"{emotion}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _run(llm, backend: str, wanted: list[str], n: int, prov: dict, output, seed: int, dry_run: bool) -> None:
    existing = read_existing(output)
    _check_same_settings(existing, prov, output)
    have: dict[str, list[str]] = {e: [] for e in wanted}
    seen: set[str] = set()
    for rec in existing:
        seen.add(_norm(rec.get("text", "")))
        if rec.get("emotion") in have:
            have[rec["emotion"]].append(rec["text"])
    todo = {e: max(0, n - len(have[e])) for e in wanted}
    language = language_of(llm)
    if existing:
        info(f"Resuming: {len(existing)} sentences already in {output}")

    if dry_run:
        total = {"requests": 0, "characters": 0}
        for e, k in todo.items():
            est = llm.estimate(e, k) if k else {"requests": 0, "characters": 0}
            for key in total:
                total[key] += int(est.get(key, 0))
        info(
            f"Dry run: {sum(todo.values())} sentences to generate with {backend!r}: "
            f"{total['requests']} requests, about {total['characters']} characters"
        )
        return

    short = {e: 0 for e in wanted}
    with open_writer(output, append=True) as out, progress() as bar:
        task = bar.add_task("gen-text", total=sum(todo.values()))
        for emotion in wanted:
            if not todo[emotion]:
                continue
            made = 0
            try:
                for text in llm.generate(emotion, todo[emotion], seed=seed, exclude=set(seen)):
                    key = _norm(text)
                    if not key or key in seen:  # deduplicate within and across runs
                        continue
                    seen.add(key)
                    record = {"id": sentence_id(emotion, text, language), "emotion": emotion, "text": text}
                    if language:
                        record["language"] = language
                    out.write({**record, "source": "synthetic", "provenance": {"gen_text": prov}})
                    made += 1
                    bar.advance(task)
                    if made >= todo[emotion]:
                        break
            except RecordError as exc:  # requests that failed after retries: report, go on
                warn(f"{emotion}: {exc}")
            short[emotion] = todo[emotion] - made
    usage = llm.usage()
    if usage:
        info("Usage: " + json.dumps(usage))
    missing = {e: k for e, k in short.items() if k > 0}
    if missing:
        raise SercliError(
            "Fewer sentences than asked for: "
            + ", ".join(f"{e} short by {k}" for e, k in missing.items())
            + ("; re-run the same command to retry" if output else "")
        )


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


# Options that change how requests are sent, not which sentences come back.
_OPERATIONAL = ("base_url", "max_concurrency", "timeout", "max_retries", "backoff", "max_requests")


def _settings(prov: dict) -> dict:
    options = {k: v for k, v in (prov.get("options") or {}).items() if k not in _OPERATIONAL}
    if options.get("language") == "en":  # sentences made before the option existed were English
        del options["language"]
    return {**prov, "options": options}


def _check_same_settings(existing: list[dict], prov: dict, output) -> None:
    """Sentences already in ``output`` count towards N only if the same backend, options and
    seed made them; otherwise the file would silently mix two generators."""
    want = _settings(prov)
    other = [r for r in existing if _settings((r.get("provenance") or {}).get("gen_text") or {}) != want]
    if other:
        made = (other[0].get("provenance") or {}).get("gen_text") or {}
        seed = made.get("seed", "not recorded")
        raise SercliError(
            f"{output} holds {len(other)} sentences made with other settings (first: {other[0].get('id')!r}, "
            f"backend {made.get('plugin')!r}, seed {seed}); resume with the same --backend, -O options "
            "and --seed, or write to another -o file"
        )
