"""Training batches from the activation store that can resume at any step, and held-out rows.

`ActivationStore.batches` is an endless generator whose RNG state cannot be saved; here the data
order is a pure function of (seed, epoch, chunk): each epoch shuffles the training shards, groups
them into chunks of about `buffer` positions, and shuffles each chunk's rows with its own RNG.
A position in the stream is therefore three integers, saved with every checkpoint, and resuming
costs one chunk read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from interp.store import ActivationStore, modality_mask


@dataclass
class StreamState:
    """Where the stream stands: the next batch is batch `batch` of chunk `chunk` of `epoch`."""

    epoch: int = 0
    chunk: int = 0
    batch: int = 0


def split_shards(store: ActivationStore, eval_frac: float) -> tuple[list[str], list[str]]:
    """(training shards, held-out shards): the last ~eval_frac of the shards are held out, at
    least one when the store has two or more; a one-shard store evaluates on its training data."""
    shards = list(store.shards)
    if len(shards) < 2 or eval_frac <= 0:
        return shards, shards
    n_eval = min(len(shards) - 1, max(1, round(eval_frac * len(shards))))
    return shards[:-n_eval], shards[-n_eval:]


def shard_rows(store: ActivationStore, shard: str, modality: str | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(rows (N, d) float32, modality codes (N,)) of a shard, optionally of one modality."""
    acts, codes = store.acts(shard), store.meta(shard)["modality"]
    if modality is not None:
        keep = modality_mask(codes, modality)
        acts, codes = acts[keep], codes[keep]
    return np.asarray(acts, dtype=np.float32), np.asarray(codes)


class BatchStream:
    """Endless shuffled (batch_size, d) float32 batches over `shards`, resumable via `state`."""

    def __init__(self, store: ActivationStore, shards: list[str], batch_size: int,
                 modality: str | None = None, buffer: int = 200_000, seed: int = 0,
                 state: StreamState | None = None):
        self.store, self.shards, self.bs = store, shards, batch_size
        self.modality, self.buffer, self.seed = modality, buffer, seed
        self.state = state or StreamState()
        self._rows: np.ndarray | None = None  # the current chunk, shuffled
        self._empty_chunks = 0

    def _chunks(self, epoch: int) -> list[list[str]]:
        """The epoch's shards in shuffled order, grouped into chunks of ≥ `buffer` positions
        (sizes from the manifest, so chunking never needs the data)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.shards)
        chunks: list[list[str]] = [[]]
        size = 0
        for s in order:
            if size >= self.buffer:
                chunks.append([])
                size = 0
            chunks[-1].append(str(s))
            size += self.store.manifest["shards"][s]
        return chunks

    def _load(self) -> np.ndarray:
        st = self.state
        names = self._chunks(st.epoch)[st.chunk]
        rows = np.concatenate([shard_rows(self.store, s, self.modality)[0] for s in names])
        rng = np.random.default_rng([self.seed, st.epoch, st.chunk])
        return rows[rng.permutation(len(rows))]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        while True:
            st = self.state
            if self._rows is None:
                self._rows = self._load()
            lo = st.batch * self.bs
            if lo + self.bs <= len(self._rows):  # the remainder of a chunk (< bs rows) is dropped
                st.batch += 1
                self._empty_chunks = 0
                return torch.from_numpy(self._rows[lo : lo + self.bs])
            self._advance()

    def _advance(self) -> None:
        st = self.state
        if st.batch == 0:
            self._empty_chunks += 1
            if self._empty_chunks > 2 * len(self.shards) + 2:
                raise ValueError(f"the store has fewer than --batch-size {self.bs} "
                                 f"{self.modality or 'any'} positions per chunk; lower "
                                 "--batch-size or build a larger store")
        self._rows = None
        st.batch = 0
        st.chunk += 1
        if st.chunk >= len(self._chunks(st.epoch)):
            st.epoch, st.chunk = st.epoch + 1, 0


def eval_rows(store: ActivationStore, shards: list[str], max_rows: int,
              seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(rows (N, d) float32, modality codes (N,)): up to `max_rows` held-out positions of every
    modality, sampled evenly at random from `shards`."""
    parts = [shard_rows(store, s, None) for s in shards]
    rows = np.concatenate([p[0] for p in parts])
    codes = np.concatenate([p[1] for p in parts])
    if len(rows) > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        rows, codes = rows[pick], codes[pick]
    return torch.from_numpy(rows), codes


def sample_rows(store: ActivationStore, shards: list[str], modality: str | None,
                n: int) -> np.ndarray:
    """The first `n` positions (of `modality`) of `shards`, float32."""
    parts, total = [], 0
    for s in shards:
        parts.append(shard_rows(store, s, modality)[0])
        total += len(parts[-1])
        if total >= n:
            break
    x = np.concatenate(parts)[:n] if parts else np.zeros((0, store.d_model), np.float32)
    if not len(x):
        raise ValueError(f"the store holds no {modality} positions in its training shards")
    return x


def norm_scale(store: ActivationStore, shards: list[str], modality: str | None,
               sample: int = 20_000) -> float:
    """SAELens's `expected_average_only_in` factor, √d / mean‖x‖, over the training positions
    (of the trained modality); `ActivationStore.norm_scale()` when every shard and position
    is used."""
    if modality is None and shards == list(store.shards):
        return store.norm_scale(sample)
    x = sample_rows(store, shards, modality, sample)
    return float(np.sqrt(store.d_model) / np.linalg.norm(x, axis=1).mean())
