"""What a store holds, checked against the files: shard sizes, and which utterances each shard has.

A finished shard is `meta/shard_i.npz` (written last) plus one `layer_L/shard_i.npy` per layer.
`verify_shard` reads only the .npy headers and the meta's `utt` column, so checking a store of
thousands of shards costs little. `plan_shards` decides, for a run's utterance selection, which
shards are done, which must be (re)written, and refuses a selection the folder cannot hold.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ACT_DTYPE = np.dtype(np.float16)


class StoreMismatch(ValueError):
    """The folder holds something else than this run would write; one line says what."""


def finished_shard_numbers(out: Path) -> list[str]:
    """Numbers of the shards whose meta file is written; a temporary file a kill left mid-write
    (`shard_00000.tmp.npz`) is not a shard."""
    return [m.group(1) for p in (out / "meta").glob("shard_*.npz")
            if (m := re.fullmatch(r"shard_(\d+)\.npz", p.name))]


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """(shape, dtype) of a whole .npy file; None when it is missing, unreadable or truncated."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if major == 1
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
            data_start = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError, EOFError):
        return None
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return (tuple(shape), dtype) if size - data_start == expected else None


def meta_utts(path: Path) -> np.ndarray | None:
    """The `utt` column of a shard's meta file; None when it is missing or unreadable."""
    try:
        with np.load(path) as z:
            return np.asarray(z["utt"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def utt_list(utt_column: np.ndarray) -> list[int]:
    """The utterances of a shard in the order they were cached."""
    return [int(u) for u in dict.fromkeys(utt_column.tolist())]


def selection_digest(utts: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, utts)).encode()).hexdigest()[:16]


def verify_shard(out: Path, name: str, layers: Sequence[int], d_model: int,
                 rows: int | None = None) -> str | None:
    """None when the shard is whole (meta readable, every layer file of the meta's row count, or
    of `rows` when given); else what is wrong, naming the file."""
    meta = out / "meta" / f"{name}.npz"
    utt = meta_utts(meta)
    if utt is None:
        return f"{meta} is missing or unreadable"
    n = len(utt) if rows is None else rows
    if len(utt) != n:
        return f"{meta} has {len(utt)} rows, the manifest says {n}"
    for layer in layers:
        path = out / f"layer_{layer}" / f"{name}.npy"
        got = npy_shape(path)
        if got is None:
            return f"{path} is missing, truncated or not a .npy file"
        if got != ((n, d_model), ACT_DTYPE):
            return f"{path} holds {got[0]} {got[1]}, expected ({n}, {d_model}) float16"
    return None


def _describe(utts: Sequence[int]) -> str:
    return f"{len(utts)} utterance(s)" + (f" ({utts[0]}…{utts[-1]})" if utts else "")


def plan_shards(out: Path, chunks: Sequence[Sequence[int]], layers: Sequence[int], d_model: int,
                ) -> list[int]:
    """Indices of the shards to (re)write for `chunks` (the utterance indices of each shard).

    A finished shard with exactly its chunk's utterances is kept. One holding a strict prefix of
    its chunk (the short last shard of a smaller --max-utts) is rewritten, as is a damaged one.
    A folder holding more utterances (a larger earlier selection) or other ones is refused:
    nothing in it is touched."""
    todo: list[int] = []
    for i, want in enumerate(chunks):
        meta = out / "meta" / f"{shard_name(i)}.npz"
        if not meta.exists():
            todo.append(i)
            continue
        utt = meta_utts(meta)
        have = utt_list(utt) if utt is not None else None
        if have is not None and have != list(want) and not _is_prefix(have, want):
            if _is_prefix(want, have):
                raise _shrinking(out, chunks)
            raise StoreMismatch(
                f"{out} holds another utterance selection: {shard_name(i)} has {_describe(have)}, "
                f"this run puts {_describe(list(want))} there; use another --out, or the "
                "--split/--max-utts it was built with")
        if have is None or have != list(want) or verify_shard(out, shard_name(i), layers,
                                                              d_model) is not None:
            todo.append(i)
    if any(int(n) >= len(chunks) for n in finished_shard_numbers(out)):
        raise _shrinking(out, chunks)
    return todo


def _shrinking(out: Path, chunks: Sequence[Sequence[int]]) -> StoreMismatch:
    held = sum(len(utt_list(u)) for n in finished_shard_numbers(out)
               if (u := meta_utts(out / "meta" / f"shard_{n}.npz")) is not None)
    wanted = sum(len(c) for c in chunks)
    return StoreMismatch(
        f"{out} holds more utterances than this run selects ({held} cached, {wanted} selected): "
        f"a smaller --max-utts would leave some out; use another --out, or --max-utts {held}")


def _is_prefix(have: Sequence[int], want: Sequence[int]) -> bool:
    return len(have) < len(want) and list(want[: len(have)]) == list(have)
