"""The API judge: any OpenAI-compatible /v1/chat/completions server (vLLM, Qwen3-Omni, ...)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import httpx

from interp.judge.protocol import Prompts, Query, build_messages, load_prompts, parse_reply
from interp.judge.records import STATUS_FAILED, STATUS_OK, Outcome

logger = logging.getLogger(__name__)

API_KEY_ENVS = ("JUDGE_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True)
class ApiConfig:
    base_urls: tuple[str, ...] = ("http://127.0.0.1:8000/v1",)
    """OpenAI-compatible servers, used round-robin (one request each, retries included)."""
    model: str = "Qwen3Omni-Instruct"
    """Model name sent in every request."""
    concurrency: int = 16
    """Queries in flight at once, over all servers."""
    retries: int = 3
    """Re-asks after an unparsable or invalid answer; then the query fails (counts as wrong)."""
    max_attempts: int = 10
    """HTTP requests per query in all (timeouts, 5xx, refused connections and re-asks count)."""
    timeout: float = 300.0
    """Seconds allowed for one request, end to end."""
    backoff_base: float = 1.0
    """First back-off delay in s after a transport failure; doubles each time, with jitter."""
    backoff_max: float = 60.0
    """Longest back-off delay in s."""
    refused_limit: int = 2
    """Refused connections in a row from every server after which the judge is taken to be down:
    the remaining queries fail at once (unanswered) instead of backing off for minutes."""
    audio_style: str = "input_audio"
    """How audio is sent: `input_audio` parts (base64 wav) or `audio_url` data URIs."""
    temperature: float | None = None
    """Sampling temperature; None leaves the server's default."""
    max_tokens: int | None = 1024
    """Cap on the reply length; None leaves the server's default."""
    api_key: str | None = None
    """Bearer token; None reads $JUDGE_API_KEY, then $OPENAI_API_KEY (optional)."""
    prompt_dir: Path | None = None
    """Folder with system.txt and user.txt; None finds data/judge/."""


def chat_url(base_url: str) -> str:
    """http://host:8000, .../v1 or .../v1/chat/completions → the chat completions endpoint."""
    u = base_url.rstrip("/")
    if u.endswith("/chat/completions"):
        return u
    return u + ("/chat/completions" if u.endswith("/v1") else "/v1/chat/completions")


class RetryableReply(Exception):
    """A transport-level failure worth another attempt after a back-off."""


class FatalReply(Exception):
    """A failure another attempt would not fix (e.g. HTTP 400, 404)."""


class RefusedReply(RetryableReply):
    """Nothing listens at the server's address: retried on the next server without a back-off."""


def _reply_text(body: object) -> str:
    try:
        content = body["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError) as e:
        raise RetryableReply(f"malformed response: no choices[0].message.content ({e!r})") from e
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _name(query: Query) -> str:
    return f"{query.sample_id} rubric {query.rubric_index} ask {query.query_index}"


class ApiBackend:
    """Asks each query over HTTP with bounded concurrency, back-off, re-asks and round-robin."""

    name = "api"

    def __init__(self, cfg: ApiConfig, prompts: Prompts | None = None) -> None:
        if not cfg.base_urls:
            raise ValueError("the api backend needs at least one base URL")
        if (cfg.max_attempts < 1 or cfg.retries < 0 or cfg.concurrency < 1
                or cfg.refused_limit < 1):
            raise ValueError("need max_attempts >= 1, retries >= 0, concurrency >= 1, "
                             "refused_limit >= 1")
        self.cfg = cfg
        self.prompts = prompts or load_prompts(cfg.prompt_dir)
        bad = [u for u in cfg.base_urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"base URL(s) must start with http:// or https://: {bad}")
        self.urls = [chat_url(u) for u in cfg.base_urls]
        self._cycle = itertools.cycle(self.urls)
        self._client: httpx.AsyncClient | None = None
        self._jitter = random.Random(0)
        key = cfg.api_key or next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), None)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.requests_sent = 0
        self._refused = dict.fromkeys(self.urls, 0)  # refusals in a row, per server
        self.down: str | None = None  # set once every server refused refused_limit times

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.cfg.concurrency * 2)
            self._client = httpx.AsyncClient(timeout=self.cfg.timeout, limits=limits)
        return self._client

    def payload(self, query: Query) -> dict:
        p: dict = {"model": self.cfg.model,
                   "messages": build_messages(self.prompts, query, self.cfg.audio_style)}
        if self.cfg.temperature is not None:
            p["temperature"] = self.cfg.temperature
        if self.cfg.max_tokens is not None:
            p["max_tokens"] = self.cfg.max_tokens
        return p

    async def _post(self, url: str, payload: dict) -> str:
        self.requests_sent += 1
        try:
            r = await asyncio.wait_for(
                self.client.post(url, json=payload, headers=self._headers), self.cfg.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException) as e:
            raise RetryableReply(f"timeout after {self.cfg.timeout:g} s") from e
        except httpx.ConnectError as e:
            self._note_refused(url)
            raise RefusedReply(f"connection refused by {url} ({e})") from e
        except httpx.TransportError as e:
            raise RetryableReply(f"connection error: {type(e).__name__}: {e}") from e
        self._refused[url] = 0
        if r.status_code >= 500 or r.status_code in (408, 409, 429):
            raise RetryableReply(f"HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise FatalReply(f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            body = r.json()
        except ValueError as e:
            raise RetryableReply(f"malformed response body: {r.text[:120]!r}") from e
        return _reply_text(body)

    def _pick(self, last: str | None) -> str:
        """A first request goes round-robin; a retry goes to the server after the one it last
        tried, skipping servers that refused their last connection while any other does not
        (taking the next one from the shared cycle could, with many queries in flight, send one
        query to the same dead server every time)."""
        if last is None or len(self.urls) == 1:
            return next(self._cycle)
        i = self.urls.index(last)
        order = self.urls[i + 1:] + self.urls[:i + 1]
        return next((u for u in order if self._refused[u] == 0), order[0])

    def _delay(self, failures: int) -> float:
        d = min(self.cfg.backoff_base * 2 ** (failures - 1), self.cfg.backoff_max)
        return d * (0.5 + 0.5 * self._jitter.random())

    def _note_refused(self, url: str) -> None:
        self._refused[url] += 1
        if self.down is None and min(self._refused.values()) >= self.cfg.refused_limit:
            self.down = (f"no judge server is reachable: {', '.join(self.urls)} refused "
                         f"{self.cfg.refused_limit} connection(s) in a row")
            logger.error("%s; the remaining queries fail at once (start the server, then re-run "
                         "with --retry_failed)", self.down)

    async def ask(self, query: Query) -> Outcome:
        """At most max_attempts requests; at most 1 + retries answers read; never raises."""
        try:
            payload = self.payload(query)
        except Exception as e:  # unreadable audio discovered late, bad template, ...
            return Outcome(STATUS_FAILED, error=f"could not build request: {e}")
        attempts = answers = failures = 0
        servers: list[str] = []
        reply: str | None = None
        error = "no attempt made"
        while attempts < self.cfg.max_attempts and answers <= self.cfg.retries:
            if self.down is not None:
                error = self.down
                break
            url = self._pick(servers[-1] if servers else None)
            servers.append(url)
            attempts += 1
            try:
                reply = await self._post(url, payload)
            except FatalReply as e:
                error = str(e)
                logger.warning("%s: %s answered %s; not retried", _name(query), url, e)
                break
            except RefusedReply as e:
                error = str(e)
                logger.warning("%s: attempt %d of %d: %s", _name(query), attempts,
                               self.cfg.max_attempts, e)
                if attempts >= self.cfg.max_attempts:
                    break
                await asyncio.sleep(min(self.cfg.backoff_base, 0.5) if len(self.urls) == 1 else 0)
                continue
            except RetryableReply as e:
                error, failures = str(e), failures + 1
                if attempts >= self.cfg.max_attempts:
                    logger.warning("%s: attempt %d of %d via %s failed: %s; giving up",
                                   _name(query), attempts, self.cfg.max_attempts, url, e)
                    break
                delay = self._delay(failures)
                logger.warning("%s: attempt %d of %d via %s failed: %s; retrying in %.1f s",
                               _name(query), attempts, self.cfg.max_attempts, url, e, delay)
                await asyncio.sleep(delay)
                continue
            answers += 1
            parsed = parse_reply(reply, len(query.options))
            if parsed.choice is not None:
                return Outcome(STATUS_OK, parsed.choice, reply, parsed.reason, None, attempts,
                               answers, base_urls=tuple(servers))
            error = parsed.error or "unparsable reply"
            logger.info("%s: %s replied %r: %s; asking again", _name(query), url, reply[:120],
                        error)
        return Outcome(STATUS_FAILED, None, reply, None,
                       f"{error} (after {attempts} request(s), {answers} answer(s))",
                       attempts, answers, base_urls=tuple(servers))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
