"""Test helpers: a scripted OpenAI-compatible judge server and synthetic speech-like audio.

    with FakeJudgeServer(lambda req: FakeReply(letter=req.letter_of("Female"))) as srv:
        ApiConfig(base_urls=(srv.base_url,))
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import soundfile as sf

from interp.audio import SAMPLE_RATE

_OPTION_RE = re.compile(r"^([A-Z])\. (.*)$", re.M)
_QUESTION_RE = re.compile(r"Question: (.*?)\n\nOptions:", re.S)


@dataclass
class FakeRequest:
    """What the server understood of one chat request."""

    model: str
    question: str
    options: dict[str, str]  # letter → option text
    clips: list[tuple[str, float]]  # (label, duration in s) in order
    audio_style: str
    server: str
    payload: dict = field(repr=False, default_factory=dict)

    def letter_of(self, text: str) -> str:
        return next(k for k, v in self.options.items() if v == text)

    def other_letter(self, text: str) -> str:
        return next(k for k, v in self.options.items() if v != text)


@dataclass
class FakeReply:
    """One scripted response: a JSON choice, raw content, an HTTP error, a broken body."""

    letter: str | None = None
    content: str | None = None  # raw assistant content (overrides letter)
    status: int = 200
    delay: float = 0.0
    broken_body: bool = False


def _clip_duration(part: dict) -> tuple[str, float]:
    if part["type"] == "input_audio":
        b64, style = part["input_audio"]["data"], "input_audio"
    else:
        b64, style = part["audio_url"]["url"].split(",", 1)[1], "audio_url"
    info = sf.info(io.BytesIO(base64.b64decode(b64)))
    return style, info.frames / info.samplerate


def parse_request(payload: dict, server: str) -> FakeRequest:
    user = next(m for m in payload["messages"] if m["role"] == "user")["content"]
    clips, style, label = [], "", ""
    for part in user:
        if part["type"] == "text" and part["text"].endswith(":"):
            label = part["text"][:-1]
        elif part["type"] in ("input_audio", "audio_url"):
            style, dur = _clip_duration(part)
            clips.append((label, dur))
    text = user[-1]["text"]
    q = _QUESTION_RE.search(text)
    return FakeRequest(payload.get("model", ""), q.group(1) if q else "",
                       dict(_OPTION_RE.findall(text)), clips, style, server, payload)


class FakeJudgeServer:
    """A threaded HTTP server on 127.0.0.1 answering /v1/chat/completions with `behaviour`."""

    def __init__(self, behaviour: Callable[[FakeRequest], FakeReply], name: str = "s") -> None:
        self.behaviour = behaviour
        self.name = name
        self.requests: list[FakeRequest] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = parse_request(json.loads(body), outer.name)
                with outer._lock:
                    outer.requests.append(req)
                    reply = outer.behaviour(req)
                time.sleep(reply.delay)
                if reply.broken_body:
                    data, status = b"{not json", 200
                elif reply.status != 200:
                    data, status = b'{"error": "scripted"}', reply.status
                else:
                    content = reply.content if reply.content is not None else json.dumps(
                        {"reason": "scripted", "choice": reply.letter})
                    data, status = json.dumps({"choices": [{"message": {
                        "role": "assistant", "content": content}}]}).encode(), 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeJudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def speechlike(f0: float, sr: int = SAMPLE_RATE, syllables: int = 6, syllable_s: float = 0.18,
               gap_s: float = 0.08, amp: float = 0.3) -> np.ndarray:
    """Voiced 'syllables' (7 harmonics of a slightly wobbling f0) separated by silences, (T,)."""
    out = []
    for k in range(syllables):
        n = int(syllable_s * sr)
        t = np.arange(n) / sr
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t + k))) / sr
        x = sum(np.sin(h * phase) / h for h in range(1, 8))
        out += [amp / 3 * x * np.sqrt(np.hanning(n)), np.zeros(int(gap_s * sr))]
    return np.concatenate(out).astype(np.float32)
