"""The ``azure`` TTS engine: Azure neural voices speaking each emotion with an SSML style."""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from sercli.api import (
    Options, RecordError, SercliError, TTSEngine, atomic_path, backoff_delay, wait_before_retry, warn,
)
from sercli_azure.ssml import build_ssml
from sercli_azure.styles import DEFAULT_VOICES, EXPRESSIONS, VOICE_STYLES, canonical, parse_overrides

KEY_ENV = "AZURE_SPEECH_KEY"
REGION_ENV = "AZURE_SPEECH_REGION"


class AzureTTS(TTSEngine):
    name = "azure"
    description = "Azure neural voices with SSML emotion styles (mstts:express-as), 16 kHz mono"
    max_concurrency = 4

    class Options(Options):
        voices: str = Field("", description=f"comma-separated voice pool (default: {', '.join(DEFAULT_VOICES)})")
        styles: str = Field(
            "", description="per-emotion style overrides EMOTION:STYLE[@DEGREE], comma-separated, "
            "e.g. 'angry:shouting@2,boredom:unfriendly'; 'neutral:' means no style",
        )
        on_unsupported: Literal["refuse", "remap"] = Field(
            "refuse",
            description="a voice lacking the emotion's style: refuse, or remap to a near style "
            "(with a warning)",
        )
        language: str = Field("en-US", description="xml:lang of the SSML")
        region: str | None = Field(None, description=f"Azure region (default: ${REGION_ENV})")
        endpoint: str | None = Field(
            None, description="custom endpoint URL instead of the region (sovereign clouds, "
            "Speech containers: ws://host:5000)",
        )
        max_concurrency: int = Field(4, ge=1, le=64, description="requests in flight at once")
        timeout: float = Field(30.0, gt=0, description="seconds without audio before a request is cancelled")
        max_retries: int = Field(5, ge=0, le=20, description="retries of one utterance on 429/5xx/timeouts")
        backoff: float = Field(1.0, ge=0, description="first retry delay in seconds (doubles each retry)")

        @field_validator("styles")
        @classmethod
        def _styles(cls, value: str) -> str:
            parse_overrides(value)  # ValueError -> a clear option error
            return value

    def __init__(self, name=None, options=None):
        super().__init__(name, options)
        opts = self.options
        self.max_concurrency = opts.max_concurrency
        self.expressions = {**EXPRESSIONS, **parse_overrides(opts.styles)}
        self._voices = [v.strip() for v in opts.voices.split(",") if v.strip()] or list(DEFAULT_VOICES)
        self._config = None
        self._local = threading.local()  # one synthesizer (one connection) per worker thread
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()
        self._counts = {"requests": 0, "characters": 0, "retries": 0, "failures": 0}

    # -- styles ------------------------------------------------------------------------------
    def style_for(self, emotion: str, voice: str) -> tuple[str | None, float]:
        """The (style, degree) ``voice`` speaks ``emotion`` with; SercliError when it cannot."""
        expr = self._expression(emotion)
        if not expr.styles:
            return None, 1.0
        supported = VOICE_STYLES.get(voice, frozenset())
        for style in expr.styles:
            if style in supported:
                return style, expr.degree
        if self.options.on_unsupported == "remap":
            for style in expr.fallback:
                if style in supported:
                    with self._lock:
                        first = (emotion, style) not in self._warned
                        self._warned.add((emotion, style))
                    if first:
                        warn(f"voices without a {'/'.join(expr.styles)} style (first: {voice}) speak "
                             f"{emotion!r} with the near style {style!r}")
                    return style, expr.degree
        known = "" if voice in VOICE_STYLES else " (not in the style table)"
        raise self._refusal(emotion, expr, f"Azure voice {voice}{known} cannot speak")

    def voices(self, emotion: str | None = None) -> list[str]:
        """The pool, or the voices of the pool that can speak ``emotion`` (SercliError if none)."""
        if emotion is None:
            return list(self._voices)
        able = []
        for voice in self._voices:
            try:
                self.style_for(emotion, voice)
            except SercliError:
                continue
            able.append(voice)
        if not able:
            raise self._refusal(emotion, self._expression(emotion),
                                f"None of the Azure voices ({', '.join(self._voices)}) can speak")
        return able

    def _expression(self, emotion: str):
        expr = self.expressions.get(canonical(emotion))
        if expr is None:
            raise SercliError(
                f"No Azure speaking style is set for emotion {emotion!r}; give one with "
                f"-O styles={emotion}:STYLE (or '{emotion}:' for the plain voice)"
            )
        return expr

    def _refusal(self, emotion: str, expr, subject: str) -> SercliError:
        able = sorted(v for v, styles in VOICE_STYLES.items() if styles & set(expr.styles))
        hint = "; or -O on_unsupported=remap" if expr.fallback and self.options.on_unsupported == "refuse" else ""
        return SercliError(
            f"{subject} {emotion!r}: no {'/'.join(expr.styles)} style, and Azure would silently speak "
            f"it neutrally. Voices with that style: {', '.join(able) or 'none known'}{hint}"
        )

    def identity(self) -> dict:
        """What decides the audio besides text, emotion and voice (the key of cached audio, so a
        paid utterance is never requested twice): the styles, not the pool, region or retries."""
        opts = self.options
        tables = repr((sorted(self.expressions.items()), sorted((v, sorted(s)) for v, s in VOICE_STYLES.items())))
        return {
            "plugin": self.name, "styles": zlib.crc32(tables.encode()), "on_unsupported": opts.on_unsupported,
            "language": opts.language, "endpoint": opts.endpoint,
        }

    # -- cost --------------------------------------------------------------------------------
    def estimate(self, text: str) -> dict[str, int]:
        return {"requests": 1, "characters": len(text)}

    def usage(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _count(self, **amounts: int) -> None:
        with self._lock:
            for key, value in amounts.items():
                self._counts[key] += value

    # -- synthesis ---------------------------------------------------------------------------
    def _speech_config(self):
        import azure.cognitiveservices.speech as sdk

        with self._lock:
            if self._config is None:
                opts = self.options
                key = os.environ.get(KEY_ENV)
                if not key:
                    raise SercliError(f"{KEY_ENV} is not set: export it (keys are read from the environment only)")
                if opts.endpoint:
                    config = sdk.SpeechConfig(subscription=key, endpoint=opts.endpoint)
                else:
                    region = opts.region or os.environ.get(REGION_ENV)
                    if not region:
                        raise SercliError(f"{REGION_ENV} is not set: export your Speech resource's region, e.g. westeurope")
                    config = sdk.SpeechConfig(subscription=key, region=region)
                config.set_speech_synthesis_output_format(sdk.SpeechSynthesisOutputFormat.Riff16Khz16BitMonoPcm)
                config.set_property(sdk.PropertyId.SpeechSynthesis_FrameTimeoutInterval,
                                    str(int(opts.timeout * 1000)))
                self._config = config
            return self._config

    def _synthesizer(self):
        import azure.cognitiveservices.speech as sdk

        synth = getattr(self._local, "synth", None)
        if synth is None:
            synth = self._local.synth = sdk.SpeechSynthesizer(speech_config=self._speech_config(),
                                                               audio_config=None)
        return synth

    def synthesize(self, text: str, emotion: str, voice: str, path: Path) -> None:
        import azure.cognitiveservices.speech as sdk

        style, degree = self.style_for(emotion, voice)  # before paying for a request
        ssml = build_ssml(text, voice, style, degree, self.options.language)
        opts = self.options
        for attempt in range(opts.max_retries + 1):
            self._count(requests=1)
            result = self._synthesizer().speak_ssml_async(ssml).get()
            if result.reason == sdk.ResultReason.SynthesizingAudioCompleted:
                data = result.audio_data
                if len(data) <= 44:  # a RIFF header and no samples
                    self._count(failures=1)
                    raise RecordError(f"{voice}: Azure returned no audio")
                self._count(characters=len(text))
                _write_atomic(path, data)
                return
            details = result.cancellation_details
            if details is None:
                self._count(failures=1)
                raise RecordError(f"{voice}: unexpected synthesis result {result.reason}")
            error = self._classify(details.error_code, details.error_details or "")
            if attempt == opts.max_retries:
                break
            self._count(retries=1)
            wait_before_retry(voice, error, attempt, opts.max_retries, backoff_delay(attempt, opts.backoff))
        if details.error_code == sdk.CancellationErrorCode.ConnectionFailure:
            raise SercliError(f"Cannot connect to Azure Speech for {self._where()}: {error}")
        self._count(failures=1)
        raise RecordError(f"{voice}: gave up after {attempt + 1} attempts ({error})")

    def _classify(self, code, details: str) -> str:
        """Fatal errors raise SercliError; retryable ones return a short description.
        (The SDK gives no Retry-After; it retries 429/5xx once itself before reporting.)"""
        import azure.cognitiveservices.speech as sdk

        Code = sdk.CancellationErrorCode
        where = self._where()
        # The first line, without the SDK's connection-state trailer.
        first = _redact((details.splitlines() or [str(code)])[0].split(" USP state:")[0])[:200]
        if code == Code.AuthenticationFailure:
            raise SercliError(
                f"Azure Speech authentication failed for {where}: {KEY_ENV} was rejected "
                "(check the key, and that it belongs to a Speech resource in this region)"
            )
        if code == Code.Forbidden:
            raise SercliError(f"Azure Speech refused the request (403 forbidden) for {where}: {first}")
        if code == Code.ConnectionFailure and "DNS" in details:
            fix = ("check the endpoint's host name" if self.options.endpoint else
                   f"the region is unknown or there is no network; set {REGION_ENV} to your "
                   "resource's region, e.g. westeurope")
            raise SercliError(f"Azure Speech host for {where} cannot be resolved: {fix}")
        if code in (Code.TooManyRequests, Code.ServiceTimeout, Code.ServiceUnavailable,
                    Code.ServiceError, Code.ConnectionFailure):
            return f"{code.name}: {first}"
        self._count(failures=1)
        raise RecordError(f"Azure Speech {code.name}: {first}")

    def _where(self) -> str:
        opts = self.options
        if opts.endpoint:
            return f"endpoint {opts.endpoint}"
        return f"region {opts.region or os.environ.get(REGION_ENV)!r}"


def _redact(text: str) -> str:
    key = os.environ.get(KEY_ENV, "")
    return text.replace(key, "***") if len(key) >= 4 else text


def _write_atomic(path: Path, data: bytes) -> None:
    """The service's RIFF bytes (16 kHz mono PCM) go to a temporary name, then into place,
    so a killed run never leaves half a file that a resumed run would trust."""
    with atomic_path(path, fsync=False, per_thread=True) as tmp:
        tmp.write_bytes(data)
