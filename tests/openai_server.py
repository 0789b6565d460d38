"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for the cloud-backend tests.

The real ``openai`` client talks to it over HTTP, so retries, timeouts and error mapping are
exercised for real; only the model is fake. It serves

* ``POST /v1/chat/completions``: generation prompts (it reads "Write K ..." and
  'The emotion is "E"' from the prompt and returns K fresh numbered sentences), and
  self-check prompts (it labels each sentence with ``labeler(sentence, emotion)``);
* ``POST /v1/audio/speech``: a real 0.25 s mono WAV at ``speech_rate`` (24 kHz, as OpenAI
  sends), or raw 16-bit PCM when asked.

``script`` / ``speech_script`` hold what the next requests get (one action per request, then
normal answers): ``"malformed"``, ``("status", code, headers)``, ``("sleep", seconds)``
(answer late, to trip the client's timeout), ``("sentences", [...])``, ``"quota"``.
``hold_after = K`` makes every request after the K-th wait (unanswered) until ``release()``,
so a test can kill the client at a known point. Every request is logged in ``requests``.

Run it by hand with ``python3 tests/openai_server.py`` (prints its base URL).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

SAMPLE_RATE = 24000


def tone(seconds: float = 0.25, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def wav_bytes(seconds: float = 0.25, sr: int = SAMPLE_RATE) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: deque = deque()
        self.speech_script: deque = deque()
        self.requests: list[dict] = []
        self.labeler = lambda sentence, emotion: emotion
        self.hold_after: int | None = None
        self.speech_rate = SAMPLE_RATE  # what OpenAI sends; 16000 spares the client a resampling
        self._gate = threading.Event()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server naming)
                fake._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def release(self) -> None:
        self._gate.set()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def calls(self, path: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith(path)]

    # -- request handling ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length", 0))) or b"{}")
        speech = h.path.endswith("/audio/speech")
        with self._lock:
            entry = {"path": h.path, "body": body, "time": time.monotonic(),
                     "auth": h.headers.get("Authorization", "")}
            self.requests.append(entry)
            index = len(self.requests)
            queue = self.speech_script if speech else self.script
            action = queue.popleft() if queue else "ok"
        if self.hold_after is not None and index > self.hold_after:
            self._gate.wait()
        if isinstance(action, tuple) and action[0] == "sleep":
            time.sleep(action[1])
            action = "ok"
        try:
            if isinstance(action, tuple) and action[0] == "status":
                _, code, headers = action
                self._send(h, code, {"error": {"message": f"scripted {code}", "type": "test", "code": None}},
                           headers)
            elif action == "quota":
                self._send(h, 429, {"error": {"message": "You exceeded your current quota",
                                              "type": "insufficient_quota", "code": "insufficient_quota"}})
            elif speech:
                self._speech(h, body)
            else:
                self._chat(h, body, action)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def _send(self, h, code: int, payload, headers: dict | None = None, raw: bytes | None = None,
              content_type: str = "application/json") -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def _chat(self, h, body: dict, action) -> None:
        prompt = "\n".join(m.get("content", "") for m in body.get("messages", []))
        if "Label each sentence" in prompt:
            sentences = json.loads(prompt.split("Sentences:", 1)[1].strip().splitlines()[0])
            emotion = re.search(r'The intended emotion is "([^"]+)"', prompt)
            labels = [self.labeler(s, emotion.group(1) if emotion else "") for s in sentences]
            content = json.dumps({"labels": labels})
        elif action == "malformed":
            content = '{"sentences": ["This reply stops in the middle of'
        elif isinstance(action, tuple) and action[0] == "sentences":
            content = json.dumps({"sentences": action[1]})
        else:
            k = int(re.search(r"Write (\d+) ", prompt).group(1))
            emotion = re.search(r'The emotion is "([^"]+)"', prompt).group(1)
            content = json.dumps({"sentences": [self.sentence(emotion) for _ in range(k)]})
        self._send(h, 200, {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": (len(prompt) + len(content)) // 4},
        })

    def sentence(self, emotion: str) -> str:
        """A fresh sentence (numbered, so never repeated within one server's life)."""
        k = next(self._numbers)
        return f"I keep thinking about parcel number {k} that came this morning for {len(emotion)} people."

    def _speech(self, h, body: dict) -> None:
        if body.get("response_format") == "pcm":
            pcm = (tone(sr=self.speech_rate) * 32767).astype("<i2").tobytes()
            self._send(h, 200, None, raw=pcm, content_type="audio/pcm")
        else:
            self._send(h, 200, None, raw=wav_bytes(sr=self.speech_rate), content_type="audio/wav")


if __name__ == "__main__":
    with FakeOpenAI() as server:
        print(server.url, flush=True)
        threading.Event().wait()
