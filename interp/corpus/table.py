"""The ground-truth table: one row per utterance, in `utterances.parquet` of a corpus folder.

`domain` says where a row's sentence comes from ("grammar" or "open"); tables written before the
column existed are grammar-only, and `load_table` reads them so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from interp.atomic import atomic_save

TABLE = "utterances.parquet"
MANIFEST = "manifest.json"

_WORD = pa.struct([("word", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
                   ("timed", pa.bool_())])
_TAG = pa.struct([("tag", pa.string()), ("start", pa.float64()), ("end", pa.float64())])
SCHEMA = pa.schema([
    ("utt_id", pa.string()), ("split", pa.string()), ("domain", pa.string()),
    ("sentence_id", pa.int64()),
    ("text", pa.string()), ("text_plain", pa.string()), ("instruction", pa.string()),
    ("prompt_id", pa.string()), ("voice_id", pa.string()), ("gender", pa.string()),
    ("accent", pa.string()), ("variant", pa.string()), ("espeak_pitch", pa.int64()),
    ("rate", pa.int64()), ("rate_bin", pa.string()), ("f0_median", pa.float64()),
    ("duration", pa.float64()), ("tags", pa.list_(_TAG)), ("words", pa.list_(_WORD)),
    ("path", pa.string()),
])


def write_table(records: list[dict], path: Path) -> None:
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    atomic_save(path, lambda p: pq.write_table(table, p))


def load_table(corpus: str | Path, split: str | None = None) -> list[dict]:
    """Rows of the corpus's ground-truth table (optionally one split), as dicts."""
    path = Path(corpus) / TABLE
    if not path.exists():
        raise FileNotFoundError(f"no corpus table at {path}; build one with "
                                f"`python -m interp.corpus build --out {corpus}`")
    rows = pq.read_table(path).to_pylist()
    for r in rows:  # older tables (and chunks rendered before the column): grammar only
        r["domain"] = r.get("domain") or "grammar"
    return [r for r in rows if split is None or r["split"] == split]


def load_manifest(corpus: str | Path) -> dict:
    return json.loads((Path(corpus) / MANIFEST).read_text())


def load_audio(corpus: str | Path, row: dict) -> tuple[np.ndarray, int]:
    """(float32 audio, sample rate) of one row."""
    audio, sr = sf.read(Path(corpus) / row["path"], dtype="float32")
    return audio, sr
