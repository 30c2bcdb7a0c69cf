"""Query outcomes, the backend interface, and `results.jsonl` (the resumable checkpoint)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from interp.judge.protocol import LETTERS, Query

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
PER_SAMPLE_FILE = "per_sample.json"
TAXONOMY_FILE = "taxonomy.json"
CONFIG_FILE = "run_config.json"

STATUS_OK = "ok"  # the judge picked a letter
STATUS_FAILED = "failed"  # no usable answer within the limits; counts as wrong
STATUS_UNSUPPORTED = "unsupported"  # the acoustic judge cannot measure this; not a pass

Key = tuple[str, int, int]  # (sample id, rubric index, query index)


@dataclass(frozen=True)
class Outcome:
    """What a backend made of one query."""

    status: str
    choice: str | None = None
    reply: str | None = None
    reason: str | None = None
    error: str | None = None
    attempts: int = 0  # transport attempts (HTTP requests) used
    asks: int = 0  # answers requested (1 + re-asks after unparsable replies)
    measurement: dict[str, Any] | None = None
    base_urls: tuple[str, ...] = field(default=())


class Backend(Protocol):
    """Answers queries; `ask` never raises for a per-query problem, it returns a failed Outcome."""

    name: str

    async def ask(self, query: Query) -> Outcome: ...

    async def aclose(self) -> None: ...


def unanswered(rec: dict) -> bool:
    """A failed query that got no reply at all (refused, timed out, HTTP error, garbage body, a
    measurement that raised): it judged nothing, so it must not count as a wrong answer. A reply
    that named no valid choice is a judgement (MMAE counts it wrong) and is not unanswered."""
    return rec.get("status") == STATUS_FAILED and rec.get("reply") is None


def make_record(query: Query, outcome: Outcome, backend: str, model: str) -> dict:
    """One results.jsonl line."""
    correct = outcome.status == STATUS_OK and outcome.choice == query.right_letter
    return {
        "id": query.sample_id, "rubric_index": query.rubric_index,
        "query_index": query.query_index, "category": query.category,
        "question": query.question, "options": list(query.options),
        "right_letter": query.right_letter,
        "right_choice": query.options[LETTERS.index(query.right_letter)],
        "reply": outcome.reply, "reason": outcome.reason, "choice": outcome.choice,
        "correct": correct, "status": outcome.status, "error": outcome.error,
        "attempts": outcome.attempts, "asks": outcome.asks, "servers": list(outcome.base_urls),
        "measurement": outcome.measurement, "backend": backend, "model": model,
    }


def record_key(rec: dict) -> Key:
    return (str(rec["id"]), int(rec["rubric_index"]), int(rec["query_index"]))


def read_results(path: Path) -> dict[Key, dict]:
    """Records of an existing results.jsonl, the last line per key winning; bad lines skipped."""
    out: dict[Key, dict] = {}
    if not Path(path).exists():
        return out
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out[record_key(rec)] = rec
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                logger.warning("%s:%d: skipping a malformed line (interrupted write?)", path, n)
    return out


class ResultsWriter:
    """Appends one JSON line per query and flushes it, so a kill loses at most one line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if needs_newline:
            self._f.write("\n")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
