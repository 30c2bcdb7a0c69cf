"""Build the corpus on every core, in chunks that survive a kill (`render_loop.render_in_chunks`).

Layout of the output folder:
    manifest.json        config, accepted and refused voices, counts, hours, build time
    wav/<utt_id>.wav     16 kHz mono PCM16
    chunks/*.jsonl       per-chunk ground truth (the resume points)
    utterances.parquet   the ground-truth table, one row per utterance (see `table.py`)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from interp.atomic import atomic_write_text
from interp.corpus.espeak import check_installed
from interp.corpus.plan import CorpusConfig, plan_corpus
from interp.corpus.render_loop import check_same_config, render_in_chunks
from interp.corpus.table import MANIFEST, TABLE, write_table
from interp.corpus.voices import Voice, check_voice, default_voices, parse_voice

log = logging.getLogger(__name__)


def accept_voices(cfg: CorpusConfig) -> tuple[list[Voice], dict[str, float], dict[str, str]]:
    """Voices whose measured F0 agrees with their gender; explicit voices must all pass."""
    voices = [parse_voice(v) for v in cfg.voices] if cfg.voices else default_voices(cfg.seed)
    accepted, f0s, refused = [], {}, {}
    for v in voices:
        try:
            f0s[v.voice_id] = round(check_voice(v), 1)
            accepted.append(v)
        except ValueError as exc:
            if cfg.voices:  # the user named this voice: refuse loudly rather than drop it
                raise
            refused[v.voice_id] = str(exc)
            log.warning("refused %s", exc)
    return accepted, f0s, refused


@dataclass(frozen=True)
class CorpusJob:
    """Where the corpus goes and how many processes render it (what is rendered: CorpusConfig,
    saved in the manifest)."""

    out: Path = Path("runs/tinycosy/corpus")
    """output folder"""
    workers: int | None = None
    """processes (default: all cores)"""


def run_corpus(job: CorpusJob, cfg: CorpusConfig | None = None) -> dict:
    """Render (resuming) the corpus `cfg` describes into `job.out`; returns the manifest."""
    return build_corpus(cfg or CorpusConfig(), Path(job.out), job.workers)


def build_corpus(cfg: CorpusConfig, out: Path, workers: int | None = None) -> dict:
    """Render every planned utterance not yet on disk; returns the manifest."""
    check_installed()
    out.mkdir(parents=True, exist_ok=True)
    check_same_config(out, cfg.to_dict(), "a corpus")
    start = time.time()
    voices, f0s, refused = accept_voices(cfg)
    specs = plan_corpus(cfg, voices)
    manifest = {"config": cfg.to_dict(), "voices": [v.to_dict() | {"f0_check": f0s[v.voice_id]}
                                                    for v in voices], "refused_voices": refused}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    records, done_before = render_in_chunks(specs, out, cfg.sample_rate, cfg.seed, workers)
    write_table(records, out / TABLE)
    manifest["summary"] = summarize(records) | {"build_seconds": round(time.time() - start, 1),
                                                "resumed_from": done_before}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def summarize(records: list[dict]) -> dict:
    """Counts and hours of audio by split, domain, gender, accent, rate bin and tag."""
    def count(key: str, default: str | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in records:
            value = str(r.get(key, default))
            out[value] = out.get(value, 0) + 1
        return dict(sorted(out.items()))

    tags: dict[str, int] = {}
    for r in records:
        for t in r["tags"]:
            tags[t["tag"]] = tags.get(t["tag"], 0) + 1
    return {"utterances": len(records), "hours": round(sum(r["duration"] for r in records) / 3600, 3),
            "voices": len({r["voice_id"] for r in records}),
            "sentences": len({r["sentence_id"] for r in records}),
            # chunks rendered before `domain` existed are grammar
            "split": count("split"), "domain": count("domain", "grammar"),
            "gender": count("gender"), "accent": count("accent"),
            "rate_bin": count("rate_bin"), "tags": tags}
