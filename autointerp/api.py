"""The chat-model client of the API explainer and scorer, with a persistent answer cache.

Transport (round-robin URLs, timeouts, 5xx / 429 retries with jittered exponential back-off,
fatal 4xx) and its config (`ApiConfig`, built by `AutointerpConfig.api_config()`) are the
judge's; this adds free-form payloads, a reply parser per question, and `api_cache.jsonl`: every
answer that parsed is appended (one JSON line, keyed by a hash of the whole request), so a killed
or repeated run never asks the same thing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from interp.aio import run_sync
from interp.judge.api_backend import ApiBackend, ApiConfig, FatalReply, RetryableReply
from interp.judge.protocol import Prompts

log = logging.getLogger(__name__)

CACHE = "api_cache.jsonl"
_JSON_RE = re.compile(r"\{.*\}", re.S)

Parse = Callable[[str], Any]


def request_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ReplyCache:
    """Parsed-OK replies by request key, appended line by line (a torn last line is skipped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replies: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    self.replies[rec["key"]] = rec["reply"]
                except (ValueError, KeyError, TypeError):
                    continue

    def put(self, key: str, reply: str) -> None:
        self.replies[key] = reply
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "reply": reply}) + "\n")
            f.flush()


def reply_json(reply: str) -> dict:
    """The first {...} object of a reply (models wrap JSON in prose or code fences)."""
    m = _JSON_RE.search(reply or "")
    if not m:
        raise ValueError(f"no JSON object in reply {reply[:80]!r}")
    obj = json.loads(m.group(0))
    if not isinstance(obj, dict):
        raise ValueError("reply JSON is not an object")
    return obj


class ChatClient(ApiBackend):
    """`ask_many([(id, payload, parse)])` → {id: (parsed or None, error or None)}; never raises
    for a failed question: after `max_attempts` requests or `retries` bad answers it is a miss."""

    def __init__(self, cfg: ApiConfig, cache_path: Path) -> None:
        super().__init__(cfg, prompts=Prompts("", string.Template(""), "autointerp"))
        self.cache = ReplyCache(cache_path)
        self.cache_hits = 0

    def chat(self, system: str, parts: list[dict]) -> dict:
        p: dict = {"model": self.cfg.model, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": parts}]}
        if self.cfg.max_tokens is not None:
            p["max_tokens"] = self.cfg.max_tokens
        return p

    async def ask_json(self, payload: dict, parse: Parse) -> tuple[Any, str | None]:
        key = request_key(payload)
        if key in self.cache.replies:
            try:
                parsed = parse(self.cache.replies[key])
                self.cache_hits += 1
                return parsed, None
            except (ValueError, TypeError, KeyError):
                pass  # a parser changed since; ask again
        attempts = answers = failures = 0
        error = "no attempt made"
        while attempts < self.cfg.max_attempts and answers <= self.cfg.retries:
            attempts += 1
            try:
                reply = await self._post(next(self._cycle), payload)
            except FatalReply as e:
                return None, str(e)
            except RetryableReply as e:
                error, failures = str(e), failures + 1
                await asyncio.sleep(self._delay(failures))
                continue
            answers += 1
            try:
                parsed = parse(reply)
            except (ValueError, TypeError, KeyError) as e:
                error = f"malformed answer: {e}"
                continue
            self.cache.put(key, reply)
            return parsed, None
        return None, f"{error} (after {attempts} request(s))"

    async def _ask_many(self, items: list[tuple[Any, dict, Parse]], desc: str) -> dict:
        sem = asyncio.Semaphore(self.cfg.concurrency)
        bar = tqdm(total=len(items), desc=desc, unit="q")

        async def one(item: tuple[Any, dict, Parse]) -> tuple[Any, tuple[Any, str | None]]:
            async with sem:
                res = await self.ask_json(item[1], item[2])
            bar.update()
            return item[0], res

        try:
            return dict(await asyncio.gather(*(one(it) for it in items)))
        finally:
            bar.close()
            await self.aclose()

    def ask_many(self, items: list[tuple[Any, dict, Parse]], desc: str = "api") -> dict:
        out = run_sync(self._ask_many(items, desc))
        failed = sum(err is not None for _, err in out.values())
        if failed:
            log.warning("%s: %d of %d questions failed (kept as unanswered)", desc, failed,
                        len(items))
        return out
