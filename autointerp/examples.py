"""Which positions show a latent: explanation evidence and held-out scoring examples.

Held-out utterances are split in two by a seeded permutation (`sae.planted.explain_mask`):
evidence (top-activating, quantile-sampled and random non-activating examples, as Delphi draws
them) and the offline explainer's attribute matching come from the *explain* half; detection scoring uses only the
*score* half, so no example that produced a label is used to judge it. Non-activating examples
are matched to the activating ones' modality (speech for speech, text for text): with random
positions a label as weak as "speech" would pass for any audio-modal latent, and the
shuffled-label control would sit far above 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sae.latent_stats import LatentStats


@dataclass(frozen=True)
class Examples:
    """Global position indices of one latent's examples."""

    top: np.ndarray
    quantiles: np.ndarray
    random: np.ndarray
    score_pos: np.ndarray
    score_neg: np.ndarray


def token_keys(meta: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) int64: each position's token as one key, modality and id together (text token 5
    and speech code 5 are different tokens)."""
    return meta["modality"].astype(np.int64) << 32 | (meta["token"].astype(np.int64) + 1)


def quantile_sample(idx: np.ndarray, val: np.ndarray, n: int, rng: np.random.Generator
                    ) -> np.ndarray:
    """One position from each of `n` equal-count activation bins (all when fewer)."""
    if len(idx) <= n:
        return idx[np.argsort(-val, kind="stable")]
    order = idx[np.argsort(-val, kind="stable")]
    return np.array([rng.choice(b) for b in np.array_split(order, n)])


class Sampler:
    """Draws one latent's examples; pools of positions per (half, modality) are built once."""

    def __init__(self, stats: LatentStats, explain: np.ndarray, seed: int) -> None:
        self.stats, self.explain, self.seed = stats, explain, seed
        mod = stats.meta["modality"]
        self.pools = {(half, m): np.flatnonzero((explain == half) & (mod == m))
                      for half in (True, False) for m in (0, 1, 2)}
        self._by_key: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._key = np.zeros(0, np.int64)

    def negatives(self, like: np.ndarray, active: np.ndarray, half: bool,
                  rng: np.random.Generator) -> np.ndarray:
        """Non-activating positions of `half`, one per position of `like`, same modality."""
        mod = self.stats.meta["modality"]
        out = []
        for m in (0, 1, 2):
            want = int((mod[like] == m).sum())
            pool = self.pools[(half, m)]
            if want == 0 or len(pool) == 0:
                continue
            cand = rng.choice(pool, size=min(len(pool), want * 4 + 8), replace=False)
            out.append(cand[~np.isin(cand, active)][:want])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def same_token_negatives(self, latent: int, pos: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
        """(positives kept, negatives): for each of `pos`, a position of the score half with
        the same token (modality and id) where `latent` does not fire; a positive whose token
        the latent fires on everywhere there has none and is left out. With them a label must
        tell a firing occurrence of a token from a silent one: what it explains beyond input
        identity (the input-identity control scores 0.5 on such pairs by construction)."""
        if self._by_key is None:  # score-half positions grouped by token, built once
            key = token_keys(self.stats.meta)
            half = np.flatnonzero(~self.explain)
            order = half[np.argsort(key[half], kind="stable")]
            keys, start = np.unique(key[order], return_index=True)
            self._key, self._by_key = key, (keys, np.append(start, len(order)), order)
        keys, bounds, order = self._by_key
        rng = np.random.default_rng([self.seed, latent, 29])
        busy = np.zeros(len(self._key), bool)  # firing, or already paired
        busy[self.stats.column(latent)[0]] = True
        kept, neg = [], []
        for p in np.asarray(pos, np.int64):
            k = int(np.searchsorted(keys, self._key[p]))
            if k == len(keys) or keys[k] != self._key[p]:
                continue
            group = order[bounds[k]: bounds[k + 1]]
            free = group[~busy[group]]
            if len(free):
                kept.append(p)
                neg.append(int(rng.choice(free)))
                busy[neg[-1]] = True
        return np.array(kept, np.int64), np.array(neg, np.int64)

    def draw(self, latent: int, n_top: int, n_quantile: int, n_random: int, n_score: int
             ) -> Examples:
        rng = np.random.default_rng([self.seed, latent])
        idx, val = self.stats.column(latent)
        in_explain = self.explain[idx]
        e_idx, e_val = idx[in_explain], val[in_explain]
        order = np.argsort(-e_val, kind="stable")
        top = e_idx[order[:n_top]]
        rest = order[n_top:]
        quant = quantile_sample(e_idx[rest], e_val[rest], n_quantile, rng)
        shown = np.concatenate([top, quant]).astype(np.int64)
        rand = self.negatives(shown[:n_random] if len(shown) else shown, idx, True, rng)
        score_pos = quantile_sample(idx[~in_explain], val[~in_explain], n_score, rng)
        score_neg = self.negatives(score_pos, idx, False, rng)
        return Examples(top, quant, rand, score_pos.astype(np.int64), score_neg)
