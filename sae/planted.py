"""Planted-concept metrics of an SAE on held-out positions: recall (a latent that detects each
planted concept of the corpus at AUROC >= 0.9, per speech position and per utterance) and
absorption (how many latents it takes to detect a concept together).

The ground truth is `sae.attributes` (the corpus's planted concepts at every position) and the
activations `sae.latent_stats.LatentStats` (one pass of the SAE over a store). Held-out
utterances are split in two by `explain_mask`: latents are chosen on the *explain* half and
read on the other, so no position that picked a latent judges it. `residual_ceiling` is the
control above recall: what a linear probe on the residual itself reads of each concept (a
latent cannot be asked to detect what no linear read of the residual detects). Auto-interp reports the same
recall (`autointerp.run`), the layer sweep reports both (`sae.sweep`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from interp.concepts import LABEL, PLANTED_COLUMNS, as_text
from interp.store import ActivationStore, modality_mask
from sae.attributes import Attributes, build_attributes
from sae.latent_stats import META_KEYS, LatentStats, encode_store, with_sequences


def explain_mask(meta: dict[str, np.ndarray], seed: int, frac: float = 0.5) -> np.ndarray:
    """(N,) bool: positions of utterances in the explain half (whole sequences stay together)."""
    seqs = np.unique(meta["seq"])
    rng = np.random.default_rng([seed, 7])
    chosen = rng.permutation(seqs)[: max(1, round(frac * len(seqs)))]
    return np.isin(meta["seq"], chosen)


def auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes."""
    y = np.asarray(y, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def summarize(values: list[float | None]) -> dict:
    v = np.array([x for x in values if x is not None], float)
    if not len(v):
        return {"mean": None, "median": None, "n": 0}
    return {"mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
            "n": int(len(v))}


def latent_aurocs(stats: LatentStats, concept: np.ndarray, subset: np.ndarray,
                  latents: np.ndarray) -> np.ndarray:
    """AUROC of each latent's activation at detecting `concept` over `subset` positions, from
    the nonzero activations only (zeros tie with each other and lie below every nonzero)."""
    n_pos = int((concept & subset).sum())
    n_neg = int((~concept & subset).sum())
    out = np.full(len(latents), np.nan)
    if n_pos == 0 or n_neg == 0:
        return out
    for i, lat in enumerate(latents):
        idx, val = stats.column(int(lat))
        keep = subset[idx]
        c = concept[idx[keep]]
        pv, nv = val[keep][c], np.sort(val[keep][~c])
        zeros_neg = n_neg - len(nv)
        lo, hi = np.searchsorted(nv, pv, "left"), np.searchsorted(nv, pv, "right")
        u = (n_pos - len(pv)) * 0.5 * zeros_neg + (zeros_neg + lo + 0.5 * (hi - lo)).sum()
        out[i] = u / (n_pos * n_neg)
    return out


UTTERANCE_LEVEL = PLANTED_COLUMNS  # gender, accent, rate; and label:COLUMN=VALUE


def segment_means(stats: LatentStats, live: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean activation of each live latent over each speech segment (one waveform heard in one
    sequence: prompt or target): (n_seg, n_live), the segment's src_utt and sequence."""
    meta = stats.meta
    speech, seg, count, first = speech_segments(meta)
    s = sp.csr_matrix((1.0 / count[seg], (seg, speech)), shape=(len(count), stats.n_positions))
    means = (s @ stats.acts[:, live]).toarray()
    return means, meta["src_utt"][first], meta["seq"][first]


def speech_segments(meta: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The speech positions, each one's segment (one waveform heard in one sequence), each
    segment's size and its first position."""
    speech = np.flatnonzero(meta["modality"] == 1)
    key = meta["seq"][speech].astype(np.int64) * (int(meta["src_utt"].max()) + 1) \
        + meta["src_utt"][speech]
    _, seg, count = np.unique(key, return_inverse=True, return_counts=True)
    return speech, seg, count, speech[np.unique(seg, return_index=True)[1]]


def utterance_column(name: str) -> tuple[str, str] | None:
    """(table column, value) of a concept that belongs to a whole utterance (gender, accent,
    rate, label:COLUMN=VALUE); None for events such as tags."""
    kind, _, value = name.partition(":")
    if kind == LABEL:
        column, _, value = value.partition("=")
        return column, value
    return (UTTERANCE_LEVEL[kind], value) if kind in UTTERANCE_LEVEL else None


def utterance_recall(stats: LatentStats, rows: list[dict], explain: np.ndarray,
                     live: np.ndarray, rand: np.ndarray, names: list[str]) -> dict[str, dict]:
    """Gender, accent and rate belong to a whole utterance: AUROC of a latent's mean activation
    over each speech segment, best latent chosen on explain-half segments, read on the rest."""
    if not len(live):
        return {}
    means, src, seq = segment_means(stats, live)
    in_explain = np.zeros(int(stats.meta["seq"].max()) + 1, bool)
    in_explain[stats.meta["seq"][explain]] = True
    half = in_explain[seq]
    ranks = {h: rankdata(means[half == h], axis=0) for h in (True, False)}
    out = {}
    for name in names:
        if (where := utterance_column(name)) is None:
            continue
        column, value = where
        y = np.array([as_text(rows[int(u)].get(column)) == value for u in src])
        au = {}
        for h in (True, False):
            yh = y[half == h]
            n1, n0 = int(yh.sum()), int((~yh).sum())
            au[h] = (ranks[h][yh].sum(0) - n1 * (n1 + 1) / 2) / max(n1 * n0, 1) if n1 and n0 \
                else None
        if au[True] is None or au[False] is None:
            continue
        best = int(np.argmax(au[True]))
        ctrl = au[False][np.isin(live, rand)]
        out[name] = {"utterance_latent": int(live[best]),
                     "utterance_auroc": round(float(au[False][best]), 4),
                     "utterance_random_auroc": round(float(ctrl.mean()), 4) if len(ctrl)
                     else None}
    return out


def group_cover(stats: LatentStats, concept: np.ndarray, fit: np.ndarray, test: np.ndarray,
                candidates: np.ndarray, size: int, gain: float = 0.005
                ) -> tuple[list[int], float | None]:
    """A diagnostic of feature splitting: greedily gather up to `size` latents whose "any of
    them fires" best detects the concept on the `fit` positions (balanced accuracy, i.e. the
    AUROC of a yes/no detector); returns them and that detector's AUROC on `test`."""

    def score(cover: np.ndarray, where: np.ndarray) -> float:
        y, c = concept[where], cover[where]
        return float((c[y].mean() + (~c[~y]).mean()) / 2)

    cover = np.zeros(stats.n_positions, bool)
    chosen: list[int] = []
    best = 0.5
    for _ in range(size):
        trials = []
        for lat in (int(x) for x in candidates if int(x) not in chosen):
            trial = cover.copy()
            trial[stats.column(lat)[0]] = True
            trials.append((score(trial, fit), lat, trial))
        if not trials or max(trials)[0] < best + gain:
            break
        best, lat, cover = max(trials, key=lambda t: t[0])
        chosen.append(lat)
    if not chosen or not concept[test].any() or concept[test].all():
        return chosen, None
    return chosen, round(score(cover, test), 4)


def _recall(rows: list[dict], key: str, good: float) -> float | None:
    if not rows:
        return None
    return round(float(np.mean([r.get(key) is not None and r[key] >= good for r in rows])), 4)


def planted_recall(stats: LatentStats, attrs: Attributes, explain: np.ndarray, live: np.ndarray,
                   seed: int, n_random: int = 20, good: float = 0.9,
                   table: list[dict] | None = None, group: int = 5) -> dict:
    """Per planted concept: the latent best at detecting it on the explain half's speech
    positions, and its AUROC on the score half; next to it the mean AUROC of random live
    latents (the control). Recall = share of concepts with a latent at >= `good`. With the
    corpus `table`, also the utterance-level reading of gender, accent and rate; and, as a
    diagnostic of feature splitting, up to `group` latents that detect it together."""
    speech = stats.meta["modality"] == 1
    rng = np.random.default_rng([seed, 13])
    rand = rng.choice(live, size=min(n_random, len(live)), replace=False) if len(live) else live
    rows: list[dict] = []
    for name in attrs.planted():
        concept = attrs.column(name)
        fit = latent_aurocs(stats, concept, speech & explain, live)
        if np.all(np.isnan(fit)):
            continue
        best = int(live[int(np.nanargmax(fit))])
        held = latent_aurocs(stats, concept, speech & ~explain, np.array([best]))[0]
        ctrl = latent_aurocs(stats, concept, speech & ~explain, rand)
        cands = live[np.argsort(-np.nan_to_num(fit, nan=0.0), kind="stable")[:4 * group]]
        members, g_auroc = group_cover(stats, concept, speech & explain, speech & ~explain,
                                       cands, group)
        rows.append({"concept": name, "n_positions": int((concept & speech).sum()),
                     "best_latent": best, "auroc_explain": round(float(np.nanmax(fit)), 4),
                     "auroc": None if np.isnan(held) else round(float(held), 4),
                     "random_auroc": None if np.all(np.isnan(ctrl))
                     else round(float(np.nanmean(ctrl)), 4),
                     "group_latents": members, "group_auroc": g_auroc})
    out = {"concepts": rows, "threshold": good, "recall": _recall(rows, "auroc", good),
           "group_recall": _recall(rows, "group_auroc", good), "group_size": group,
           "random_recall": _recall(rows, "random_auroc", good),
           "mean_auroc": summarize([r["auroc"] for r in rows])["mean"],
           "random_mean_auroc": summarize([r["random_auroc"] for r in rows])["mean"]}
    if table is None:
        return out
    extra = utterance_recall(stats, table, explain, live, rand, [r["concept"] for r in rows])
    for r in rows:  # tags are events, not utterance properties: their position AUROC stands
        r.update(extra.get(r["concept"], {"utterance_latent": r["best_latent"],
                                          "utterance_auroc": r["auroc"],
                                          "utterance_random_auroc": r["random_auroc"]}))
    return out | {"utterance_recall": _recall(rows, "utterance_auroc", good),
                  "utterance_random_recall": _recall(rows, "utterance_random_auroc", good)}


def auroc_above_zero(pos: np.ndarray, neg: np.ndarray, n_pos: int, n_neg: int) -> float | None:
    """AUROC of non-negative scores given only where they may be nonzero: `pos` (`neg`) are the
    scores of some of the n_pos positive (n_neg negative) positions, every other one scores 0
    (ties count half)."""
    if n_pos == 0 or n_neg == 0:
        return None
    nv = np.sort(neg)
    zeros_neg = n_neg - len(nv) + int(np.searchsorted(nv, 0.0, "right"))
    lo, hi = np.searchsorted(nv, pos, "left"), np.searchsorted(nv, pos, "right")
    above = pos > 0
    # a positive above 0 beats every implicit zero; at 0 it ties with them
    u = (lo + 0.5 * (hi - lo) + (n_neg - len(nv)) * np.where(above, 1.0, 0.5)).sum()
    u += (n_pos - len(pos)) * 0.5 * zeros_neg
    return float(u / (n_pos * n_neg))


def absorption_count(stats: LatentStats, concept: np.ndarray, fit: np.ndarray, test: np.ndarray,
                     candidates: np.ndarray, cap: int = 16, good: float = 0.9,
                     gain: float = 2e-3) -> tuple[int | None, list[int], list[float | None]]:
    """How many latents it takes to detect `concept` at AUROC >= `good` together.

    The detector is the sum of the chosen latents' activations, each divided by its mean
    nonzero activation on the `fit` positions (so a weak latent counts as much as a strong one).
    Latents are added greedily from `candidates`, each time the one whose addition most raises
    the detector's AUROC on the `fit` positions (stopping at `cap`, or when none raises it by
    `gain`); the count is the size of the first such set whose AUROC on the `test` positions
    reaches `good` (None when none does). Returns (count, the latents added, their sets'
    test-half AUROCs)."""
    n_fit = (int((concept & fit).sum()), int((~concept & fit).sum()))
    n_test = (int((concept & test).sum()), int((~concept & test).sum()))
    if 0 in n_fit or 0 in n_test or not len(candidates):
        return None, [], []
    cols = [stats.column(int(lat)) for lat in candidates]
    # U: the fit and test positions where some candidate fires; every other one scores 0
    where = np.unique(np.concatenate([idx for idx, _ in cols]))
    where = where[fit[where] | test[where]]
    dense = np.zeros((len(where), len(cols)), np.float32)
    for j, (idx, val) in enumerate(cols):
        keep = fit[idx] | test[idx]
        idx, val = idx[keep], val[keep]
        on_fit = fit[idx]
        scale = float(val[on_fit].mean()) if on_fit.any() else 0.0
        if scale > 0:
            dense[np.searchsorted(where, idx), j] = val / scale
    y, in_fit, in_test = concept[where], fit[where], test[where]
    score = np.zeros(len(where), np.float32)
    chosen: list[int] = []
    test_aurocs: list[float | None] = []
    best = 0.5
    for _ in range(min(cap, len(cols))):
        trials = []
        for j in range(len(cols)):
            if j in chosen or not dense[:, j].any():
                continue
            s = (score + dense[:, j])[in_fit]
            trials.append((auroc_above_zero(s[y[in_fit]], s[~y[in_fit]], *n_fit), j))
        if not trials or max(trials)[0] < best + gain:
            break
        best, j = max(trials)
        chosen.append(j)
        score += dense[:, j]
        s = score[in_test]
        test_aurocs.append(auroc_above_zero(s[y[in_test]], s[~y[in_test]], *n_test))
        if test_aurocs[-1] is not None and test_aurocs[-1] >= good:
            return len(chosen), [int(candidates[c]) for c in chosen], test_aurocs
    return None, [int(candidates[c]) for c in chosen], test_aurocs


def absorption(stats: LatentStats, attrs: Attributes, explain: np.ndarray, live: np.ndarray,
               cap: int = 16, good: float = 0.9, pool: int = 0) -> dict:
    """Per planted concept, on speech positions: how many latents it takes to detect it at AUROC
    >= `good` (`absorption_count`: chosen on the explain half, read on the other), from the
    `pool` (default 4 × cap) live latents best at it alone. 1 is ideal (one latent carries the
    concept); a concept split over, or absorbed into, several latents needs more; None when
    `cap` latents do not reach it. A concept without positive and negative positions in both
    halves cannot be measured (`measured` false). `mean` is over the concepts that reach it,
    `reached` the share of the measured ones that do."""
    speech = stats.meta["modality"] == 1
    fit, test = speech & explain, speech & ~explain
    rows = []
    for name in attrs.planted():
        concept = attrs.column(name)
        alone = latent_aurocs(stats, concept, fit, live)
        if np.all(np.isnan(alone)):
            continue
        cands = live[np.argsort(-np.nan_to_num(alone, nan=0.0), kind="stable")[:pool or 4 * cap]]
        n, chosen, aurocs = absorption_count(stats, concept, fit, test, cands, cap, good)
        rows.append({"concept": name, "latents": n, "chosen": chosen,
                     "auroc_by_size": [None if a is None else round(a, 4) for a in aurocs],
                     "measured": all((concept & h).any() and (~concept & h).any()
                                     for h in (fit, test))})
    measured = [r for r in rows if r["measured"]]
    reached = [r["latents"] for r in measured if r["latents"] is not None]
    return {"concepts": rows, "cap": cap, "threshold": good,
            "mean": round(float(np.mean(reached)), 4) if reached else None,
            "reached": round(len(reached) / len(measured), 4) if measured else None}


def _probe_auroc(x: np.ndarray, y: np.ndarray, fit: np.ndarray, test: np.ndarray,
                 rng: np.random.Generator, cap: int) -> float | None:
    """AUROC on `test` rows of a logistic regression fit on (at most `cap` of) the `fit` rows."""
    if y[fit].min() == y[fit].max() or y[test].min() == y[test].max():
        return None
    idx = np.flatnonzero(fit)
    idx = rng.choice(idx, cap, replace=False) if len(idx) > cap else idx
    scale = StandardScaler().fit(x[idx])
    clf = LogisticRegression(max_iter=300, C=1.0).fit(scale.transform(x[idx]), y[idx])
    a = auroc(y[test], clf.decision_function(scale.transform(x[test])))
    return None if a is None else round(a, 4)


def residual_ceiling(store: ActivationStore, shards: list[str], rows: list[dict],
                     seed: int = 0, cap: int = 60_000) -> dict:
    """Per planted concept, the AUROC of a logistic-regression probe on the raw residual, fit on
    the explain half and read on the other (`explain_mask`, as recall splits them): per speech
    position, and per utterance (each speech segment's mean residual) for gender, accent, rate
    and label columns. `ceiling_recall` is the share of concepts it reads at >= 0.9: what
    planted recall could reach at most with one linear read per concept."""
    acts, metas = [], []
    for shard in shards:
        acts.append(np.asarray(store.acts(shard), dtype=np.float32))
        m = store.meta(shard)
        metas.append({k: m[k] for k in META_KEYS})
    x = np.concatenate(acts)
    meta = with_sequences({k: np.concatenate([m[k] for m in metas]) for k in META_KEYS})
    attrs = build_attributes(meta, rows, {}, None)
    explain = explain_mask(meta, seed)
    speech = meta["modality"] == 1
    rng = np.random.default_rng([seed, 17])
    sp_idx, seg, count, first = speech_segments(meta)
    seg_x = np.zeros((len(count), x.shape[1]))
    np.add.at(seg_x, seg, x[sp_idx])
    seg_x /= count[:, None]
    seg_src, seg_half = meta["src_utt"][first], explain[first]
    out = []
    for name in attrs.planted():
        concept = attrs.column(name)
        row = {"concept": name, "auroc": _probe_auroc(x, concept, speech & explain,
                                                      speech & ~explain, rng, cap)}
        if (where := utterance_column(name)) is not None:
            column, value = where
            y = np.array([as_text(rows[int(u)].get(column)) == value for u in seg_src])
            row["utterance_auroc"] = _probe_auroc(seg_x, y, seg_half, ~seg_half, rng, cap)
        else:  # tags are events: their position reading stands
            row["utterance_auroc"] = row["auroc"]
        out.append(row)
    return {"concepts": out, "ceiling_recall": _recall(out, "auroc", 0.9),
            "ceiling_utterance_recall": _recall(out, "utterance_auroc", 0.9)}


def concept_metrics(sae, store: ActivationStore, shards: list[str], rows: list[dict],
                    seed: int = 0, modality: str | None = None, cap: int = 16) -> dict:
    """Planted-concept recall (`planted_recall`, per position and per utterance) and
    `absorption` of `sae` on the positions of `shards` of `store` (cached from the corpus whose
    table is `rows`). Live latents: those that fire on at least one of those positions (of
    `modality`, for an SAE trained on one)."""
    stats = encode_store(store, sae, shards=shards)
    attrs = build_attributes(stats.meta, rows, {}, None)
    explain = explain_mask(stats.meta, seed)
    mine = (np.ones(stats.n_positions, bool) if modality is None
            else modality_mask(stats.meta["modality"], modality))
    latent_of = np.repeat(np.arange(stats.d_sae), np.diff(stats.acts.indptr))
    fires = np.bincount(latent_of[mine[stats.acts.indices]], minlength=stats.d_sae)
    live = np.flatnonzero(fires)
    return {"positions": stats.n_positions, "live": len(live),
            "recall": planted_recall(stats, attrs, explain, live, seed, table=rows),
            "absorption": absorption(stats, attrs, explain, live, cap),
            "residual_ceiling": residual_ceiling(store, shards, rows, seed)}
