"""Run a judge over an MMAE prediction set: plan queries, resume, ask, score, write outputs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.aio import run_sync
from interp.judge.acoustic_backend import AcousticBackend, AcousticConfig
from interp.judge.api_backend import ApiBackend, ApiConfig
from interp.judge.format import (
    JudgeItem,
    load_metadata,
    load_predictions,
    resolve_items,
)
from interp.judge.metrics import per_sample, taxonomy
from interp.judge.protocol import Query, plan_queries
from interp.judge.records import (
    CONFIG_FILE,
    PER_SAMPLE_FILE,
    RESULTS_FILE,
    STATUS_FAILED,
    STATUS_UNSUPPORTED,
    TAXONOMY_FILE,
    Backend,
    Key,
    ResultsWriter,
    make_record,
    read_results,
    unanswered,
    write_json_atomic,
)

logger = logging.getLogger(__name__)

Progress = Callable[[dict], None]  # called with each new results.jsonl record


@dataclass(frozen=True)
class JudgeConfig:
    predictions: Path
    """Prediction file (MMAE samples plus an assistant audio message)."""
    metadata: Path
    """MMAE metadata file (MMAE-meta.json)."""
    audio_root: Path
    """Folder the metadata's audio paths are relative to (prediction paths too, then the
    prediction file's folder)."""
    output_dir: Path
    """Where results.jsonl, per_sample.json and taxonomy.json go; re-runs resume from it."""
    backend: str = "api"
    """'api' (OpenAI-compatible server) or 'acoustic' (offline measurements)."""
    seed: int = 0
    """Seed of the option shuffles."""
    n_queries: int = 3
    """Times each rubric is asked, options shuffled differently each time."""
    pass_threshold: int = 2
    """Right answers a rubric needs to pass."""
    retry_failed: bool = False
    """On resume, ask again the queries recorded as failed (the new line supersedes the old)."""
    sample_rate: int | None = None
    """If set, every audio must have this sample rate."""
    api: ApiConfig = field(default_factory=ApiConfig)
    acoustic: AcousticConfig = field(default_factory=AcousticConfig)

    @property
    def model_name(self) -> str:
        return self.api.model if self.backend == "api" else "acoustic"


def make_backend(cfg: JudgeConfig) -> Backend:
    if cfg.backend == "api":
        return ApiBackend(cfg.api)
    if cfg.backend == "acoustic":
        return AcousticBackend(cfg.acoustic)
    raise ValueError(f"unknown backend {cfg.backend!r}; use 'api' or 'acoustic'")


def load_items(cfg: JudgeConfig) -> list[JudgeItem]:
    """Metadata + predictions, validated, audio checked (raises JudgeDataError)."""
    samples = load_metadata(Path(cfg.metadata))
    preds = load_predictions(Path(cfg.predictions))
    return resolve_items(samples, preds, Path(cfg.audio_root), Path(cfg.predictions).parent,
                         cfg.sample_rate)


def _check_previous_config(path: Path, current: dict) -> None:
    if not path.exists():
        return
    try:
        prev = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    for k in ("backend", "model", "seed", "n_queries"):
        if prev.get(k) != current.get(k):
            logger.warning("resuming %s with %s=%r; it was %r before; earlier answers are kept",
                           path.parent, k, current.get(k), prev.get(k))


async def run_queries(queries: list[Query], backend: Backend, writer: ResultsWriter,
                      concurrency: int, model: str, progress: Progress | None = None) -> list[dict]:
    """Ask every query (at most `concurrency` at once), appending each record as it completes."""
    sem = asyncio.Semaphore(max(1, concurrency))
    records: list[dict] = []

    async def one(q: Query) -> None:
        async with sem:
            outcome = await backend.ask(q)
        rec = make_record(q, outcome, backend.name, model)
        writer.write(rec)
        records.append(rec)
        if progress is not None:
            progress(rec)

    try:
        await asyncio.gather(*(one(q) for q in queries))
    finally:
        await backend.aclose()
    return records


def pending(queries: list[Query], done: dict[Key, dict], retry_failed: bool) -> list[Query]:
    """Queries without a record (or, with retry_failed, whose record is a failure)."""
    return [q for q in queries if q.key not in done
            or (retry_failed and done[q.key].get("status") == STATUS_FAILED)]


async def ajudge(cfg: JudgeConfig, progress: Progress | None = None,
                 backend: Backend | None = None, on_plan: Callable[[int], None] | None = None
                 ) -> dict:
    """Async `judge`: for callers already inside an event loop."""
    items = load_items(cfg)
    queries = [q for it in items for q in plan_queries(it, cfg.n_queries, cfg.seed)]
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = read_results(out / RESULTS_FILE)
    run_cfg = {"backend": cfg.backend, "model": cfg.model_name, "seed": cfg.seed,
               "n_queries": cfg.n_queries, "pass_threshold": cfg.pass_threshold,
               "predictions": str(cfg.predictions), "metadata": str(cfg.metadata),
               "api": {k: v for k, v in asdict(cfg.api).items() if k != "api_key"},
               "acoustic": asdict(cfg.acoustic)}
    _check_previous_config(out / CONFIG_FILE, run_cfg)
    write_json_atomic(out / CONFIG_FILE, json.loads(json.dumps(run_cfg, default=str)))
    todo = pending(queries, done, cfg.retry_failed)
    logger.info("%d samples, %d queries planned, %d already judged, %d to ask",
                len(items), len(queries), len(queries) - len(todo), len(todo))
    if on_plan is not None:
        on_plan(len(todo))
    if todo:
        backend = backend or make_backend(cfg)
        conc = cfg.api.concurrency if backend.name == "api" else 1
        with ResultsWriter(out / RESULTS_FILE) as writer:
            new = await run_queries(todo, backend, writer, conc, cfg.model_name, progress)
        for rec in new:
            done[(rec["id"], rec["rubric_index"], rec["query_index"])] = rec
    return score(items, done, cfg, n_planned=len(queries), n_asked=len(todo))


def score(items: list[JudgeItem], done: dict[Key, dict], cfg: JudgeConfig, n_planned: int,
          n_asked: int) -> dict:
    """Write per_sample.json and taxonomy.json; return the summary."""
    out = Path(cfg.output_dir)
    ps = per_sample(items, done, cfg.n_queries, cfg.pass_threshold)
    tax = taxonomy(ps)
    write_json_atomic(out / PER_SAMPLE_FILE, ps)
    write_json_atomic(out / TAXONOMY_FILE, tax)
    ids = {it.sample.id for it in items}
    recs = [r for k, r in done.items() if k[0] in ids]
    silent = [r for r in recs if unanswered(r)]
    unjudged = sum(not e["judged"] for e in ps.values())
    if silent:
        logger.warning("%d of %d queries got no answer from the judge (%s); %d of %d samples "
                       "could not be judged", len(silent), n_planned, top_errors(silent)[0][0],
                       unjudged, len(items))
    return {
        "backend": cfg.backend, "model": cfg.model_name, "output_dir": str(out),
        "n_samples": len(items), "samples_judged": len(items) - unjudged,
        "samples_unjudged": unjudged, "queries_planned": n_planned, "queries_asked": n_asked,
        "queries_resumed": n_planned - n_asked,
        "queries_failed": sum(r.get("status") == STATUS_FAILED for r in recs),
        "queries_unanswered": len(silent),
        "queries_unsupported": sum(r.get("status") == STATUS_UNSUPPORTED for r in recs),
        "errors": top_errors(silent),
        "overall": tax["overall"], "taxonomy": {k: v for k, v in tax.items() if k != "overall"},
    }


def top_errors(records: list[dict], n: int = 3) -> list[tuple[str, int]]:
    """The commonest reasons of failed queries (their text up to the attempt counts), with counts."""
    reasons = Counter(str(r.get("error") or "?").split(" (after ")[0][:160] for r in records)
    return reasons.most_common(n)


def judge(cfg: JudgeConfig, progress: Progress | None = None, backend: Backend | None = None,
          on_plan: Callable[[int], None] | None = None) -> dict:
    """Judge a prediction set; resumable; returns the summary (overall means ×100 and counts)."""
    return run_sync(ajudge(cfg, progress, backend, on_plan))
