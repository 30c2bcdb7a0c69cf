"""Read an activation store: memory-mapped shards, shuffled training batches, metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from interp.store.check import verify_shard
from interp.store.writer import MANIFEST, MODALITY_CODES


def missing_layer(folder: Path, layer: int, layers: list[int], model_layers: int | None) -> str:
    """The one-line refusal for a layer a store does not hold, with a hint that leads somewhere."""
    if model_layers is not None and not 0 <= layer < model_layers:
        return (f"layer {layer} does not exist: the model has layers 0–{model_layers - 1} "
                f"({folder} holds {layers})")
    return (f"layer {layer} is not in {folder} (it holds layers {layers}); cache it into another "
            f"folder with `python -m interp.cache --layers {layer} --out <folder>` and pass that "
            "folder as --store")


def modality_mask(codes: np.ndarray, modality: str | None) -> np.ndarray:
    """(N,) bool: the positions whose modality code is one of `modality` ('text', 'speech',
    'special', or several joined by '+', e.g. 'text+speech'); every position when None."""
    if modality is None:
        return np.ones(len(codes), bool)
    names = modality.split("+")
    if unknown := [m for m in names if m not in MODALITY_CODES]:
        raise ValueError(f"modality {unknown[0]!r}: use one of {list(MODALITY_CODES)} "
                         "(or several joined by '+')")
    return np.isin(codes, [MODALITY_CODES[m] for m in names])


class ActivationStore:
    """One layer of a finished store. Shards are memory-mapped, so a store larger than RAM reads
    fine; `batches` streams shuffled batches through a bounded buffer. Opening checks every
    shard's files against the manifest (row counts and sizes; `verify=False` skips it)."""

    def __init__(self, folder: str | Path, layer: int, verify: bool = True):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"no activation store in {self.folder}; build one with "
                                    f"`python -m interp.cache --layers {layer} --out {folder}`")
        try:
            self.manifest = json.loads(path.read_text())
            spec = self.manifest["spec"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is corrupt ({exc}); rebuild the store") from None
        if layer not in spec["layers"]:
            raise ValueError(missing_layer(self.folder, layer, spec["layers"],
                                           self.manifest.get("model_layers")))
        if not self.manifest.get("complete"):
            raise ValueError(f"{self.folder} is incomplete; run the cache command again to finish")
        self.layer, self.d_model, self.hook = layer, spec["d_model"], spec["hook"]
        self.shards = sorted(self.manifest["shards"])
        if verify:
            self.verify()

    def verify(self) -> None:
        """Raise a one-line ValueError naming the first shard file that does not match the
        manifest (truncated, missing, another row count)."""
        for s in self.shards:
            problem = verify_shard(self.folder, s, [self.layer], self.d_model,
                                   rows=int(self.manifest["shards"][s]))
            if problem:
                raise ValueError(f"{problem}; run the cache command again to rewrite it")

    def __len__(self) -> int:
        return int(self.manifest["positions"])

    def acts(self, shard: str) -> np.ndarray:
        """(N, d_model) float16, memory-mapped."""
        return np.load(self.folder / f"layer_{self.layer}" / f"{shard}.npy", mmap_mode="r")

    def meta(self, shard: str) -> dict[str, np.ndarray]:
        with np.load(self.folder / "meta" / f"{shard}.npz") as z:
            return {k: z[k] for k in z.files}

    def _mask(self, shard: str, modality: str | None) -> np.ndarray | None:
        if modality is None:
            return None
        return modality_mask(self.meta(shard)["modality"], modality)

    def all(self, modality: str | None = None, max_rows: int | None = None) -> np.ndarray:
        """Every activation (optionally of one modality) as one float32 array."""
        parts, n = [], 0
        for s in self.shards:
            a, m = self.acts(s), self._mask(s, modality)
            a = np.asarray(a if m is None else a[m], dtype=np.float32)
            parts.append(a)
            n += len(a)
            if max_rows and n >= max_rows:
                break
        out = np.concatenate(parts) if parts else np.zeros((0, self.d_model), np.float32)
        return out[:max_rows] if max_rows else out

    def norm_scale(self, sample: int = 20000) -> float:
        """SAELens's `expected_average_only_in`: the factor that makes the mean norm sqrt(d)."""
        x = self.all(max_rows=sample)
        return float(np.sqrt(self.d_model) / np.linalg.norm(x, axis=1).mean())

    def batches(self, batch_size: int, modality: str | None = None, buffer: int = 200_000,
                seed: int = 0, scale: float = 1.0) -> Iterator[torch.Tensor]:
        """Endless shuffled (batch_size, d_model) float32 batches: shards in random order fill a
        buffer of up to `buffer` rows, which is shuffled and drained."""
        rng = np.random.default_rng(seed)
        pending: list[np.ndarray] = []
        while True:
            for s in rng.permutation(self.shards):
                a, m = self.acts(s), self._mask(s, modality)
                pending.append(np.asarray(a if m is None else a[m], dtype=np.float32))
                if sum(len(p) for p in pending) < buffer:
                    continue
                yield from _drain(pending, batch_size, rng, scale)
            yield from _drain(pending, batch_size, rng, scale)


def _drain(pending: list[np.ndarray], bs: int, rng: np.random.Generator,
           scale: float) -> Iterator[torch.Tensor]:
    """Shuffle the buffer and yield full batches; the remainder stays in `pending`."""
    if not pending:
        return
    buf = np.concatenate(pending)
    buf = buf[rng.permutation(len(buf))]
    pending.clear()
    n_full = len(buf) // bs * bs
    for i in range(0, n_full, bs):
        yield torch.from_numpy(buf[i : i + bs] * scale)
    if n_full < len(buf):
        pending.append(buf[n_full:])
