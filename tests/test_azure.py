"""The ``azure`` TTS engine: SSML, the voice/style check, and error mapping with the real Speech SDK.

The SDK is driven offline: an endpoint on 127.0.0.1 that refuses the WebSocket upgrade with an
HTTP status makes the SDK report exactly what Azure's front door would (401 ->
AuthenticationFailure, 429 -> TooManyRequests...), and a region whose host cannot resolve gives
the SDK's real DNS failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sercli.core import plugins as pl
from sercli.core.errors import RecordError, SercliError
from sercli_azure.ssml import MSTTS_NS, SSML_NS, build_ssml
from sercli_azure.styles import DEFAULT_VOICES, EXPRESSIONS, VOICE_STYLES

KEY = "azure-test-key-DO-NOT-LEAK-0042"
NASTY = 'Tom said "5 < 6 & 7 > 3" -- it\'s <b>bold</b> ]]> &amp; done\x01.'


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("AZURE_SPEECH_KEY", KEY)
    monkeypatch.setenv("AZURE_SPEECH_REGION", "westeurope")


def azure(**options):
    return pl.create("tts", "azure", {k: str(v) for k, v in options.items()})


# -- SSML ---------------------------------------------------------------------------------------

def test_ssml_for_every_emotion_and_voice_is_valid_xml_and_keeps_the_text():
    engine = azure(on_unsupported="remap")
    checked = 0
    for emotion in EXPRESSIONS:
        for voice in VOICE_STYLES:
            try:
                style, degree = engine.style_for(emotion, voice)
            except SercliError:
                continue
            root = ET.fromstring(build_ssml(NASTY, voice, style, degree))
            assert root.tag == f"{{{SSML_NS}}}speak" and root.get("version") == "1.0"
            node = root.find(f"{{{SSML_NS}}}voice")
            assert node.get("name") == voice
            if style:
                node = node.find(f"{{{MSTTS_NS}}}express-as")
                assert node.get("style") == style and float(node.get("styledegree")) == degree
                assert style in VOICE_STYLES[voice]
            assert node.text == NASTY.replace("\x01", " ")  # forbidden control char blanked
            checked += 1
    assert checked > 100
    # attribute values are escaped too
    root = ET.fromstring(build_ssml("x", 'odd"voice<&', "sad", 2, language="en-US"))
    assert root.find(f"{{{SSML_NS}}}voice").get("name") == 'odd"voice<&'


# -- voice/style table --------------------------------------------------------------------------

def test_voices_are_only_those_with_the_emotions_style():
    engine = azure()
    for emotion in ("angry", "happy", "sad", "fear", "neutral"):
        assert engine.voices(emotion) == list(DEFAULT_VOICES)
    assert engine.style_for("happy", "en-US-JennyNeural") == ("cheerful", 1.5)
    assert engine.style_for("fear", "en-US-AvaNeural") == ("fearful", 1.5)
    assert engine.style_for("neutral", "some-unknown-voice") == (None, 1.0)
    mixed = azure(voices="en-US-AvaNeural,en-GB-SoniaNeural,en-US-GuyNeural")
    assert mixed.voices("angry") == ["en-US-AvaNeural", "en-US-GuyNeural"]
    assert mixed.voices("happy") == ["en-GB-SoniaNeural", "en-US-GuyNeural"]
    with pytest.raises(SercliError, match="None of the Azure voices .* can speak 'disgust'.*on_unsupported=remap"):
        engine.voices("disgust")
    with pytest.raises(SercliError, match="en-GB-SoniaNeural cannot speak 'angry'"):
        engine.style_for("angry", "en-GB-SoniaNeural")
    with pytest.raises(SercliError, match=r"No Azure speaking style is set for emotion 'boredom'"):
        engine.voices("boredom")


def test_remap_warns_once_and_overrides_apply(capsys):
    engine = azure(on_unsupported="remap")
    assert engine.style_for("disgust", "en-US-GuyNeural") == ("unfriendly", 1.5)
    assert engine.style_for("disgust", "en-US-JaneNeural") == ("unfriendly", 1.5)
    assert capsys.readouterr().err.count("near style 'unfriendly'") == 1
    custom = azure(styles="angry:shouting@2, boredom:unfriendly@0.5, sad:")
    assert custom.style_for("anger", "en-US-TonyNeural") == ("shouting", 2.0)
    assert custom.style_for("boredom", "en-US-TonyNeural") == ("unfriendly", 0.5)
    assert custom.style_for("sad", "en-GB-SoniaNeural") == (None, 1.0)
    for bad in ("angry", "angry:sad@3", "angry:sad@x"):
        with pytest.raises(SercliError, match="Bad option for TTS engine 'azure': styles"):
            azure(styles=bad)


def test_estimate_needs_no_key(monkeypatch):
    monkeypatch.delenv("AZURE_SPEECH_KEY", raising=False)
    assert azure().estimate("Hello & bye") == {"requests": 1, "characters": 11}


# -- errors from the real SDK -------------------------------------------------------------------

class _Refuser:
    """An endpoint that answers every WebSocket upgrade with one HTTP status."""

    def __init__(self, status: int):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.headers.get("Ocp-Apim-Subscription-Key"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"ws://127.0.0.1:{self.server.server_address[1]}/tts/cognitiveservices/websocket/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def refuser():
    made = []

    def make(status):
        made.append(_Refuser(status))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_rejected_key_is_one_clear_line(key, refuser, tmp_path):
    ep = refuser(401)
    with pytest.raises(SercliError) as err:
        azure(endpoint=ep.endpoint).synthesize("Hi <there> & you", "angry", "en-US-JennyNeural", tmp_path / "a.wav")
    msg = str(err.value)
    assert not isinstance(err.value, RecordError)
    assert msg.startswith("Azure Speech authentication failed") and "AZURE_SPEECH_KEY was rejected" in msg
    assert KEY not in msg and "\n" not in msg
    assert ep.hits == [KEY]  # the key went to the service (only), once
    assert not (tmp_path / "a.wav").exists()


def test_unknown_region_is_one_clear_line(key, tmp_path):
    with pytest.raises(SercliError) as err:
        azure(region="nowhere-region-x").synthesize("Hi.", "sad", "en-US-GuyNeural", tmp_path / "a.wav")
    msg = str(err.value)
    assert "region 'nowhere-region-x'" in msg and "cannot be resolved" in msg and "AZURE_SPEECH_REGION" in msg
    assert KEY not in msg and "\n" not in msg


def test_throttling_is_retried_then_the_utterance_fails(key, refuser, tmp_path):
    ep = refuser(429)
    engine = azure(endpoint=ep.endpoint, max_retries=2, backoff=0.01)
    with pytest.raises(RecordError, match=r"gave up after 3 attempts \(TooManyRequests"):
        engine.synthesize("Hi.", "sad", "en-US-GuyNeural", tmp_path / "a.wav")
    assert engine.usage() == {"requests": 3, "characters": 0, "retries": 2, "failures": 1}
    ep = refuser(400)
    with pytest.raises(RecordError, match="Azure Speech BadRequest"):
        azure(endpoint=ep.endpoint).synthesize("Hi.", "sad", "en-US-GuyNeural", tmp_path / "a.wav")
    assert len(ep.hits) == 1  # not retried


def test_missing_key_or_region(monkeypatch, tmp_path):
    monkeypatch.delenv("AZURE_SPEECH_KEY", raising=False)
    monkeypatch.delenv("AZURE_SPEECH_REGION", raising=False)
    with pytest.raises(SercliError, match="AZURE_SPEECH_KEY is not set"):
        azure().synthesize("Hi.", "sad", "en-US-GuyNeural", tmp_path / "a.wav")
    monkeypatch.setenv("AZURE_SPEECH_KEY", KEY)
    with pytest.raises(SercliError, match="AZURE_SPEECH_REGION is not set"):
        azure().synthesize("Hi.", "sad", "en-US-GuyNeural", tmp_path / "a.wav")


def test_synthesize_command_stops_at_a_rejected_key(refuser, tmp_path):
    texts = tmp_path / "t.jsonl"
    texts.write_text("".join(json.dumps({"id": f"t{i}", "emotion": "happy", "text": f"Line {i} & more."}) + "\n"
                             for i in range(5)))
    ep = refuser(401)
    env = {**os.environ, "AZURE_SPEECH_KEY": KEY, "SERCLI_QUIET": "1"}
    base = [sys.executable, "-m", "sercli", "synthesize", str(texts), "-t", "azure",
            "-o", str(tmp_path / "o.jsonl"), "-d", str(tmp_path / "w"), "-O", f"endpoint={ep.endpoint}",
            "-O", "max_concurrency=1"]
    proc = subprocess.run([*base, "--dry-run"], env={**env, "SERCLI_QUIET": ""}, capture_output=True, text=True)
    assert proc.returncode == 0 and "5 requests, 70 characters" in proc.stderr and not ep.hits
    proc = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Azure Speech authentication failed")
    assert KEY not in proc.stderr and len(ep.hits) == 1  # the other four were never sent


# -- live (only with a real key) ----------------------------------------------------------------

@pytest.mark.skipif(
    not (os.environ.get("AZURE_SPEECH_KEY") and os.environ.get("AZURE_SPEECH_REGION")),
    reason="set AZURE_SPEECH_KEY and AZURE_SPEECH_REGION to run against Azure",
)
def test_live_azure_speaks_an_emotion(tmp_path: Path):
    import soundfile as sf

    engine = pl.create("tts", "azure")
    engine.synthesize("Who left the door wide open <again> & again?", "angry", "en-US-JennyNeural",
                      tmp_path / "live.wav")
    info = sf.info(str(tmp_path / "live.wav"))
    assert (info.samplerate, info.channels) == (16000, 1) and info.duration > 0.5
