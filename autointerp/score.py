"""Detection scoring of labels (Delphi's protocol), the shuffled-label control and per-modality
tables (planted-concept recall against the corpus's ground truth is `sae.planted`'s).

Offline scorer: the label's ground-truth predicate (the attribute the offline explainer chose),
graded by what a listener of the example would see: half for the position itself, half for the
share of the surrounding window (same sequence and modality, ±`window` positions) where the
predicate holds; the yes/no decision is the position's own predicate.

Input-identity control (`IdentityControl`): how well the token at the position alone (its text
token or speech code) predicts the same held-out examples, with no label at all — each token's
firing rate for the latent, counted on the explain half. A latent that only detects its input
scores as high here as its label does; the gap is what the label explains beyond input identity.
"""

from __future__ import annotations

import numpy as np

from autointerp.examples import token_keys
from sae.attributes import Attributes
from sae.latent_stats import LatentStats
from sae.planted import auroc, summarize


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float | None:
    y, pred = np.asarray(y, bool), np.asarray(pred, bool)
    if y.all() or not y.any():
        return None
    return float(((pred & y).sum() / y.sum() + (~pred & ~y).sum() / (~y).sum()) / 2)


class OfflineScorer:
    def __init__(self, stats: LatentStats, attrs: Attributes, window: int = 12) -> None:
        self.meta, self.attrs, self.window = stats.meta, attrs, window

    def holds(self, name: str, positions: np.ndarray) -> np.ndarray:
        """Whether attribute `name` holds at each position; "a|b&c" = (a or b) and c."""
        if "&" in name:
            return np.logical_and.reduce([self.holds(n, positions) for n in name.split("&")])
        if "|" in name:
            return np.logical_or.reduce([self.holds(n, positions) for n in name.split("|")])
        m = self.attrs.matrix
        j = self.attrs.index[name]
        col = m.indices[m.indptr[j] : m.indptr[j + 1]]  # sorted position indices
        k = np.searchsorted(col, positions)
        return (k < len(col)) & (col[np.minimum(k, len(col) - 1)] == positions)

    def graded(self, name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score in [0, 1], yes/no) of each position under attribute `name`."""
        n = len(self.meta["seq"])
        q = np.clip(positions[:, None] + np.arange(-self.window, self.window + 1), 0, n - 1)
        seq, mod = self.meta["seq"], self.meta["modality"]
        valid = (seq[q] == seq[positions, None]) & (mod[q] == mod[positions, None])
        frac = (self.holds(name, q.ravel()).reshape(q.shape) & valid).sum(1) / valid.sum(1)
        centre = self.holds(name, positions)
        return 0.5 * centre + 0.5 * frac, centre

    def score(self, name: str | None, pos: np.ndarray, neg: np.ndarray) -> dict:
        known = name is not None and all(n in self.attrs.index
                                         for n in name.replace("&", "|").split("|"))
        if not known or not len(pos) or not len(neg):
            return {"auroc": None, "balanced_accuracy": None}
        positions = np.concatenate([pos, neg]).astype(np.int64)
        y = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
        s, pred = self.graded(name, positions)
        return {"auroc": auroc(y, s), "balanced_accuracy": balanced_accuracy(y, pred)}


class IdentityControl:
    """Detection AUROC of "the latent fires on these tokens": each held-out example scored by
    its token's firing rate (modality and token id together) on the explain half, smoothed
    toward the latent's overall rate (one pseudo-count), so an unseen token gets that rate."""

    def __init__(self, stats: LatentStats, explain: np.ndarray) -> None:
        self.stats, self.explain = stats, np.asarray(explain, bool)
        _, self.key = np.unique(token_keys(stats.meta), return_inverse=True)
        self.n_keys = int(self.key.max()) + 1
        self.total = np.bincount(self.key[self.explain], minlength=self.n_keys)
        self.n_explain = max(int(self.explain.sum()), 1)

    def score(self, latent: int, pos: np.ndarray, neg: np.ndarray) -> dict:
        if not len(pos) or not len(neg):
            return {"auroc": None}
        idx, _ = self.stats.column(latent)
        idx = idx[self.explain[idx]]
        active = np.bincount(self.key[idx], minlength=self.n_keys)
        prior = len(idx) / self.n_explain
        rate = (active + prior) / (self.total + 1.0)
        positions = np.concatenate([pos, neg]).astype(np.int64)
        y = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
        return {"auroc": auroc(y, rate[self.key[positions]])}


def matches_score(y: np.ndarray, matches: list[float] | None) -> dict:
    """AUROC / balanced accuracy of an API scorer's answers (None when it never answered)."""
    if matches is None:
        return {"auroc": None, "balanced_accuracy": None}
    m = np.asarray(matches, float)
    return {"auroc": auroc(y, m), "balanced_accuracy": balanced_accuracy(y, m >= 0.5)}


def shuffled(keys: list[int], seed: int) -> dict[int, int]:
    """latent → the latent whose label it gets in the control (a derangement when possible)."""
    rng = np.random.default_rng([seed, 11])
    if len(keys) < 2:
        return {k: k for k in keys}
    perm = rng.permutation(len(keys))
    perm = np.where(perm == np.arange(len(keys)), np.roll(perm, 1), perm)
    return {k: keys[int(p)] for k, p in zip(keys, perm, strict=True)}


def by_modality(tags: list[str], scores: dict[int, dict], key: str = "auroc") -> dict:
    return {m: summarize([s[key] for lat, s in scores.items() if tags[lat] == m])
            for m in ("text", "audio", "mixed")} | {"all": summarize([s[key] for s in
                                                                      scores.values()])}

