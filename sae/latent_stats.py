"""One streaming pass of an SAE over a held-out activation store, kept as a sparse matrix.

Every later step (densities, quantiles, top/quantile/random examples, attribute matching,
scoring) reads the (positions × latents) matrix of nonzero SAE activations and the per-position
metadata, so the store is encoded once. The result is written atomically to `stats.npz` with a
key (store manifest + SAE weights fingerprint); a re-run with the same inputs loads it instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from tqdm import tqdm

from interp.atomic import atomic_save
from interp.store.reader import ActivationStore
from interp.store.writer import fingerprint
from sae.modality import modality_tag

log = logging.getLogger(__name__)

STATS = "stats.npz"
META_KEYS = ("utt", "src_utt", "position", "token", "modality", "t0", "t1")


@dataclass
class LatentStats:
    """Nonzero SAE activations of every held-out position, with per-latent summaries."""

    acts: sp.csc_matrix  # (N, d_sae) float32, column l = latent l
    meta: dict[str, np.ndarray]  # per position, META_KEYS plus `seq` (sequence index)

    def __post_init__(self) -> None:
        a = self.acts
        n = np.diff(a.indptr)  # active positions per latent
        self.n_active = n
        self.density = n / max(a.shape[0], 1)
        cols = np.repeat(np.arange(a.shape[1]), n)
        self.mean_act = np.bincount(cols, a.data, a.shape[1]) / np.maximum(n, 1)
        self.max_act = np.zeros(a.shape[1])
        self.quantiles = np.zeros((a.shape[1], 3))
        for lat in np.flatnonzero(n):
            v = self.column(lat)[1]
            self.max_act[lat] = v.max()
            self.quantiles[lat] = np.quantile(v, [0.5, 0.9, 0.99])

    @property
    def n_positions(self) -> int:
        return self.acts.shape[0]

    @property
    def d_sae(self) -> int:
        return self.acts.shape[1]

    def column(self, latent: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, values) where `latent` is active."""
        s, e = self.acts.indptr[latent], self.acts.indptr[latent + 1]
        return self.acts.indices[s:e], self.acts.data[s:e]

    def dense(self, latent: int) -> np.ndarray:
        """(N,) activations of one latent, zeros included."""
        out = np.zeros(self.n_positions, np.float32)
        idx, val = self.column(latent)
        out[idx] = val
        return out


def stats_key(store: ActivationStore, sae_dir: Path) -> str:
    """What the pass depends on: the store's manifest and the SAE's weights."""
    return json.dumps({"store": store.manifest, "layer": store.layer,
                       "sae": fingerprint(sae_dir / "sae_weights.safetensors")}, sort_keys=True)


@torch.no_grad()
def encode_store(store: ActivationStore, sae, chunk: int = 8192,
                 shards: list[str] | None = None) -> LatentStats:
    """Encode every shard (or those named) in chunks, keeping only the nonzero activations."""
    rows, cols, vals, metas = [], [], [], []
    offset = 0
    for shard in tqdm(store.shards if shards is None else shards,
                      desc=f"encode layer {store.layer}", unit="shard"):
        a, m = store.acts(shard), store.meta(shard)
        for i in range(0, len(a), chunk):
            x = torch.from_numpy(np.asarray(a[i : i + chunk], dtype=np.float32))
            f = sae.encode(x)  # (n, d_sae)
            r, c = torch.nonzero(f > 0, as_tuple=True)
            rows.append(r.numpy() + offset + i)
            cols.append(c.numpy())
            vals.append(f[r, c].numpy().astype(np.float32))
        metas.append({k: m[k] for k in META_KEYS})
        offset += len(a)
    d_sae = int(sae.cfg.d_sae)
    acts = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(offset, d_sae), dtype=np.float32)
    meta = {k: np.concatenate([m[k] for m in metas]) for k in META_KEYS}
    return LatentStats(acts, with_sequences(meta))


def with_sequences(meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add `seq`: each teacher-forced sequence starts at position 0."""
    return {**meta, "seq": np.cumsum(meta["position"] == 0) - 1}


def save_stats(path: Path, stats: LatentStats, key: str) -> None:
    a = stats.acts
    arrays = {f"meta_{k}": stats.meta[k] for k in META_KEYS}
    atomic_save(path, lambda p: np.savez(p, data=a.data, indices=a.indices, indptr=a.indptr,
                                         shape=np.array(a.shape), key=np.array(key), **arrays))


def load_stats(path: Path, key: str) -> LatentStats | None:
    """The saved pass, or None when absent, unreadable or made from other inputs."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            if str(z["key"]) != key:
                log.info("%s was computed from another store or SAE; recomputing", path)
                return None
            acts = sp.csc_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
            meta = {k: z[f"meta_{k}"] for k in META_KEYS}
    except (OSError, ValueError, KeyError) as e:
        log.warning("unreadable %s (%s); recomputing", path, e)
        return None
    return LatentStats(acts, with_sequences(meta))


def latent_stats(store: ActivationStore, sae, sae_dir: Path, out: Path) -> LatentStats:
    """The stats pass, loaded from `out/stats.npz` when it matches, else computed and saved."""
    key = stats_key(store, sae_dir)
    stats = load_stats(out / STATS, key)
    if stats is None:
        stats = encode_store(store, sae)
        save_stats(out / STATS, stats, key)
    else:
        log.info("reusing %s", out / STATS)
    return stats


def modality_tags(stats: LatentStats, n_top: int, audio: float, text: float
                  ) -> tuple[list[str], np.ndarray]:
    """Per latent: "audio" / "text" / "mixed" / "dead", and the speech share of its top
    `n_top` activations (NaN for dead latents)."""
    speech = stats.meta["modality"] == 1
    tags, frac = [], np.full(stats.d_sae, np.nan)
    for lat in range(stats.d_sae):
        idx, val = stats.column(lat)
        if len(idx) == 0:
            tags.append("dead")
            continue
        top = idx[np.argsort(-val, kind="stable")[:n_top]]
        f = float(speech[top].mean())
        frac[lat] = f
        tags.append(modality_tag(f, audio, text))
    return tags, frac
