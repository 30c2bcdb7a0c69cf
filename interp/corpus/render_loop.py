"""The one chunked, resumable render loop: planned utterances → wavs + ground truth, on every core.

Specs are cut into chunks of `CHUNK`; a chunk is done when its `chunks/<first utt_id>.jsonl`
exists, and that file is written (atomically) only after every wav of the chunk, so a killed run
resumes at the first unfinished chunk and never trusts a half-written one. The corpus builder and
the edit-pairs builder both render through here, so both folders have the same layout:

    wav/<utt_id>.wav     16 kHz mono PCM16
    chunks/*.jsonl       per-chunk ground truth (the resume points)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from interp.atomic import atomic_save, atomic_write_text
from interp.corpus.plan import UtteranceSpec
from interp.corpus.render import render_utterance
from interp.corpus.table import MANIFEST

log = logging.getLogger(__name__)
CHUNK = 64


def check_same_config(out: Path, config: dict, what: str = "a corpus") -> None:
    """Refuse to resume into a folder built with another config: its chunks would be mixed in."""
    manifest = out / MANIFEST
    if manifest.exists():
        old = json.loads(manifest.read_text())["config"]
        if old != config:
            raise ValueError(f"{out} holds {what} built with another config ({old}); "
                             "use a new --out or delete that folder")


def chunk_file(out: Path, chunk: Sequence[UtteranceSpec]) -> Path:
    return out / "chunks" / f"{chunk[0].utt_id}.jsonl"


def render_chunk(args: tuple[list[UtteranceSpec], str, int, int]) -> int:
    """Render one chunk (a process-pool job, hence one picklable tuple); returns its size."""
    specs, out, sr, seed = args
    out_dir = Path(out)
    records = []
    for spec in specs:
        audio, record = render_utterance(spec, sr, seed)
        atomic_save(out_dir / record["path"],
                    lambda p, a=audio: sf.write(p, a, sr, subtype="PCM_16"))
        records.append(record)
    atomic_write_text(chunk_file(out_dir, specs),
                      "".join(json.dumps(r) + "\n" for r in records))
    return len(specs)


def render_in_chunks(specs: Sequence[UtteranceSpec], out: Path, sample_rate: int, seed: int,
                     workers: int | None = None) -> tuple[list[dict], int]:
    """Render every spec whose chunk is not on disk yet (on `workers` processes, default every
    core) with a progress bar; returns (the records of all specs in plan order, how many were
    already done before this call)."""
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "chunks").mkdir(exist_ok=True)
    chunks = [list(specs[i : i + CHUNK]) for i in range(0, len(specs), CHUNK)]
    todo = [(c, str(out), sample_rate, seed) for c in chunks if not chunk_file(out, c).exists()]
    done_before = len(specs) - sum(len(t[0]) for t in todo)
    if done_before:
        log.info("%s: resuming, %d of %d utterances already rendered", out, done_before,
                 len(specs))
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(specs), initial=done_before, desc="render", unit="utt") as bar:
        if workers == 1:
            for t in todo:
                bar.update(render_chunk(t))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for n in pool.map(render_chunk, todo):
                    bar.update(n)
    records = [json.loads(line) for c in chunks
               for line in chunk_file(out, c).read_text().splitlines()]
    return records, done_before
