"""The ground-truth table: one row per utterance, in `utterances.parquet` of a corpus folder.

`domain` says where a row's sentence comes from ("grammar" or "open"); tables written before the
column existed are grammar-only, and `load_table` reads them so.

Every table has the fixed columns of `SCHEMA`. A corpus may carry label columns of its own after
them (an imported corpus keeps its manifest's extra columns, e.g. `style` or `emotion`, see
`interp.corpus.importer`): `write_table` writes every record key beyond `SCHEMA` as one more
column (typed by pyarrow from its values: string, int, float or bool; a column of nothing but
None is a string column), `load_table` rows carry them like any other key, and `label_columns`
names them — all but `PROVENANCE` (an import's `source`, the recording's own path: one value per
row, where it came from, not what it is). Readers that know only the fixed columns read such a table unchanged.
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
# Columns beyond SCHEMA that say where a row came from, not what it is: never labels.
PROVENANCE = ("source",)

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
    """Write the table: the fixed columns, then every other key of the records (in order of
    first appearance) as a label column; a record without one of them has None there."""
    schema = SCHEMA
    fixed = set(SCHEMA.names)
    extra = list(dict.fromkeys(k for r in records for k in r if k not in fixed))
    for name in extra:
        try:
            kind = pa.array([r.get(name) for r in records]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ValueError(f"label column {name!r} mixes kinds of values ({exc}); give it "
                             "one kind (text or numbers)") from exc
        schema = schema.append(pa.field(name, pa.string() if kind == pa.null() else kind))
    table = pa.Table.from_pylist(records, schema=schema)
    atomic_save(path, lambda p: pq.write_table(table, p))


def label_columns(corpus: str | Path) -> list[str]:
    """The corpus's own label columns: those of its table beyond the fixed `SCHEMA` (and
    `PROVENANCE`)."""
    names = pq.read_schema(Path(corpus) / TABLE).names
    return [n for n in names if n not in {*SCHEMA.names, *PROVENANCE}]


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
