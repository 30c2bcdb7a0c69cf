"""`python -m interp.edit build`: render the edit pairs and their speech tokens.

Both sides of every pair are rendered with the corpus renderer, so the pairs folder *is* a corpus
folder (the corpus's tools and `interp.audio tokenize` read it), plus the pair table:

    manifest.json        config, accepted and refused voices, counts by split and operation
    wav/<pair>s.wav      source;  wav/<pair>t.wav  target (16 kHz mono PCM16)
    chunks/*.jsonl       per-chunk ground truth of the utterances (the resume points; rendered
                         by the corpus's loop, `interp.corpus.render_loop.render_in_chunks`)
    utterances.parquet   one row per rendered utterance (the corpus schema)
    pairs.json           one record per pair (see `EditPair.record`)
    tokens/              speech tokens of every utterance (resumable shards)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from interp.atomic import atomic_write_json
from interp.audio.tokenize_corpus import tokenize_corpus
from interp.corpus.build import accept_voices
from interp.corpus.espeak import check_installed
from interp.corpus.plan import CorpusConfig
from interp.corpus.render_loop import check_same_config, render_in_chunks
from interp.corpus.table import MANIFEST, TABLE, write_table
from interp.corpus.voices import Voice, check_voice
from interp.edit.plan import EditPlanConfig, plan_pairs
from interp.paths import CODEC_DIR

PAIRS = "pairs.json"
TOKENS = "tokens"


@cache
def voice_ok(voice: Voice) -> bool:
    """Whether espeak renders `voice` at an F0 that agrees with its gender label."""
    try:
        check_voice(voice)
        return True
    except ValueError:
        return False


def load_pairs(folder: str | Path, split: str | None = None) -> list[dict]:
    """Pair records of a built pairs folder (optionally one split)."""
    path = Path(folder) / PAIRS
    if not path.exists():
        raise FileNotFoundError(f"no edit pairs at {path}; build them with "
                                f"`python -m interp.edit build --out {folder}`")
    pairs = json.loads(path.read_text())
    return [p for p in pairs if split is None or p["split"] == split]


@dataclass(frozen=True)
class PairsJob:
    """Where the edit pairs go and how (what is planned: EditPlanConfig, saved in the manifest)."""

    out: Path = Path("runs/tinyedit/pairs")
    """output folder"""
    codec: Path = CODEC_DIR
    """speech codec folder"""
    workers: int | None = None
    """processes (default: all cores)"""


def run_build(job: PairsJob, plan: EditPlanConfig | None = None) -> dict:
    """Render (resuming) and tokenize the pairs `plan` describes into `job.out`; the manifest."""
    return build_pairs(plan or EditPlanConfig(), Path(job.out), job.codec, job.workers)


def build_pairs(cfg: EditPlanConfig, out: Path, codec_dir: Path | None,
                workers: int | None = None) -> dict:
    """Plan, render (resuming), write the tables and tokenize; returns the manifest.

    `codec_dir` None skips tokenization (tokens are then made by `python -m interp.audio`)."""
    check_installed()
    out.mkdir(parents=True, exist_ok=True)
    check_same_config(out, cfg.to_dict(), "pairs")
    start = time.time()
    voices, f0s, refused = accept_voices(CorpusConfig(voices=cfg.voices, seed=cfg.seed))
    pairs = plan_pairs(cfg, voices, voice_ok)
    manifest: dict = {"config": cfg.to_dict(), "voices": {v.voice_id: f0s[v.voice_id]
                                                          for v in voices},
                      "refused_voices": refused}
    atomic_write_json(out / MANIFEST, manifest)
    specs = [s for p in pairs for s in (p.source, p.target)]
    records, _ = render_in_chunks(specs, out, cfg.sample_rate, cfg.seed, workers)
    write_table(records, out / TABLE)
    atomic_write_json(out / PAIRS, [p.record() for p in pairs])
    if codec_dir is not None:
        tokenize_corpus(out, Path(codec_dir), out / TOKENS, workers=workers)
    manifest["summary"] = {
        "pairs": len(pairs), "utterances": len(records),
        "hours": round(sum(r["duration"] for r in records) / 3600, 3),
        "split": dict(Counter(p.split for p in pairs)),
        "operation": dict(Counter(p.operation for p in pairs)),
        "mmae_operation": dict(Counter(p.record()["mmae_operation"] for p in pairs)),
        "build_seconds": round(time.time() - start, 1)}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
