"""Explainers: offline (the corpus attribute that best predicts activation) and API (a chat
model reads the evidence)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autointerp.api import ChatClient
from autointerp.prompts import Templates, explain_parts, parse_label
from sae.attributes import Attributes, describe, describe_union
from sae.latent_stats import LatentStats

ANNOTATIONS = "[annotations] "


@dataclass(frozen=True)
class Label:
    label: str | None
    explanation: str | None
    explainer: str
    attribute: str | None = None  # the ground-truth predicate behind an offline label


def attribute_match(stats: LatentStats, attrs: Attributes, rows: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d_sae, n_attr) true- and false-positive rates of "attribute present" as a predictor of
    "latent active" over positions `rows`, plus active counts.

    The false-positive rate is measured within each modality and weighted by the latent's
    active share there, as the scorer's modality-matched negatives will test it: otherwise
    "any speech position" would win for every audio-modal latent and detect nothing."""
    mod = stats.meta["modality"][rows]
    tp = fpr = 0.0
    n_act = np.zeros(stats.d_sae)
    parts = []
    for m in (0, 1, 2):
        r = rows[mod == m]
        if not len(r):
            continue
        z = stats.acts[r].tocsc()
        z.data = np.ones_like(z.data)
        a = attrs.matrix[r].astype(np.float32)
        tp_m = (z.T @ a).toarray()  # (d_sae, n_attr) positions where both hold
        act_m = np.asarray(z.sum(0)).ravel()
        fpr_m = (np.asarray(a.sum(0)).ravel()[None, :] - tp_m) / np.maximum(len(r) - act_m,
                                                                             1)[:, None]
        parts.append((act_m, fpr_m))
        tp, n_act = tp + tp_m, n_act + act_m
    for act_m, fpr_m in parts:
        fpr = fpr + (act_m / np.maximum(n_act, 1))[:, None] * fpr_m
    return tp / np.maximum(n_act, 1)[:, None], fpr, n_act


CONTEXT = ("gender:", "accent:", "rate:", "voice:", "speech:", "tag:", "time:", "edge:",
           "silence")


class FormulaSearch:
    """Greedy search for "(a or b …) and c …" over attributes, scored by the same
    modality-weighted J on the explain half: many audio latents fire on a family of acoustic
    units (an OR of codes), often only in some voices (an AND with a context attribute)."""

    def __init__(self, stats: LatentStats, attrs: Attributes, explain: np.ndarray) -> None:
        rows = np.flatnonzero(explain)
        self.attrs = attrs.matrix[rows].tocsc()  # local row ids
        self.acts = stats.acts[rows].tocsc()
        self.mod = stats.meta["modality"][rows]
        self.n_m = np.bincount(self.mod, minlength=3)
        self.ctx = [j for j, n in enumerate(attrs.names) if n.startswith(CONTEXT)]
        # (n_local, n_ctx) bool, so that every AND trial of a step is one fancy index
        self.ctx_mat = self.attrs[:, self.ctx].toarray().astype(bool)

    def col(self, j: int) -> np.ndarray:
        return self.attrs.indices[self.attrs.indptr[j] : self.attrs.indptr[j + 1]]

    def _restricted(self, c: int, ands: list[int]) -> np.ndarray:
        """Positions of attribute c that satisfy every AND term so far."""
        add = self.col(c)
        for a in ands:
            add = add[self.ctx_mat[add, a]]
        return add

    def _fpr(self, act_m: np.ndarray, fp_m: np.ndarray) -> np.ndarray:
        """Modality-weighted FPR from false-positive counts per modality (3, …)."""
        w = act_m / max(act_m.sum(), 1) / np.maximum(self.n_m - act_m, 1)
        return (w.reshape(3, *([1] * (fp_m.ndim - 1))) * fp_m).sum(0)

    def rates(self, act: np.ndarray, act_m: np.ndarray, sel: np.ndarray) -> tuple[float, float]:
        """(TPR, FPR) of the selection `sel` (local positions); `act` marks active ones."""
        hit = act[sel]
        fp_m = np.bincount(self.mod[sel[~hit]], minlength=3)
        return float(hit.sum() / max(act_m.sum(), 1)), float(self._fpr(act_m, fp_m))

    def _trials(self, act: np.ndarray, act_m: np.ndarray, sel: np.ndarray, ors: list[int],
                ands: list[int], order: np.ndarray) -> list[tuple]:
        trials = []
        in_sel = np.zeros(len(self.mod), bool)
        in_sel[sel] = True
        hit_sel = act[sel]
        n_act = max(act_m.sum(), 1)
        fp_sel = np.bincount(self.mod[sel[~hit_sel]], minlength=3)
        for c in map(int, order):  # "sel or c": count only what c adds (no set union)
            if c not in ors:
                new = self._restricted(c, ands)
                new = new[~in_sel[new]]
                hit = act[new]
                fp_m = fp_sel + np.bincount(self.mod[new[~hit]], minlength=3)
                trials.append(((hit_sel.sum() + hit.sum()) / n_act, float(self._fpr(act_m, fp_m)),
                               "or", c))
        sub = self.ctx_mat[sel]  # (|sel|, n_ctx): every "sel and context" at once
        hit = act[sel]
        tpr = sub[hit].sum(0) / max(act_m.sum(), 1)
        fp_m = np.stack([sub[~hit & (self.mod[sel] == m)].sum(0) for m in range(3)])
        fpr = self._fpr(act_m, fp_m)
        kept = sub.sum(0)
        for a in range(len(self.ctx)):
            if a not in ands and 0 < kept[a] < len(sel):
                trials.append((float(tpr[a]), float(fpr[a]), "and", a))
        return trials

    def refine(self, lat: int, order: np.ndarray, max_terms: int, gain: float = 0.02
               ) -> tuple[list[int], list[int], float, float]:
        """(OR terms, AND terms as attribute indices, TPR, FPR): take the step that raises J
        most while it raises J by at least `gain`, up to `max_terms` terms in all."""
        active = self.acts.indices[self.acts.indptr[lat] : self.acts.indptr[lat + 1]]
        act = np.zeros(len(self.mod), bool)
        act[active] = True
        act_m = np.bincount(self.mod[active], minlength=3)
        ors, ands = [int(order[0])], []
        sel = self.col(ors[0])
        tpr, fpr = self.rates(act, act_m, sel)
        for _ in range(max_terms - 1):
            trials = self._trials(act, act_m, sel, ors, ands, order)
            if not trials:
                break
            t_tpr, t_fpr, op, c = max(trials, key=lambda t: t[0] - t[1])
            if t_tpr - t_fpr < tpr - fpr + gain:
                break
            if op == "or":
                ors.append(c)
                sel = np.union1d(sel, self._restricted(c, ands))
            else:
                ands.append(c)
                sel = sel[self.ctx_mat[sel, c]]
            tpr, fpr = t_tpr, t_fpr
        return ors, [self.ctx[a] for a in ands], tpr, fpr


def offline_labels(stats: LatentStats, attrs: Attributes, explain: np.ndarray,
                   latents: list[int], max_terms: int = 3, candidates: int = 10
                   ) -> dict[int, Label]:
    """Label = the attribute (or a formula of up to `max_terms`: an OR of the `candidates` best
    ones, ANDed with context attributes) with the largest TPR − FPR (Youden's J: the balanced accuracy of the attribute as an activation
    detector, minus ½) on the explain half."""
    tpr, fpr, n_act = attribute_match(stats, attrs, np.flatnonzero(explain))
    j = tpr - fpr
    search = FormulaSearch(stats, attrs, explain)
    out = {}
    for lat in latents:
        if n_act[lat] == 0:
            out[lat] = Label(None, "no activation in the explain half", "offline")
            continue
        order = np.argsort(-j[lat], kind="stable")[:candidates]
        ors, ands, t, f = search.refine(lat, order, max_terms)
        names = [attrs.names[b] for b in ors]
        name = "&".join(["|".join(names)] + [attrs.names[a] for a in ands])
        desc = " and ".join([describe_union(names)] + [describe(attrs.names[a]) for a in ands])
        out[lat] = Label(ANNOTATIONS + desc,
                         f"attribute {name}: holds at {t:.0%} of {int(n_act[lat])} active "
                         f"explain-half positions and {f:.1%} of inactive ones of the same "
                         f"modality (J = {t - f:.3f})", "offline", name)
    return out


def api_labels(client: ChatClient, tpl: Templates, evidence: dict[int, dict],
               tags: list[str], layer_dir: Path, max_examples: int = 20) -> dict[int, Label]:
    """One question per latent with its top and quantile examples (and its output-side sentence,
    input and output descriptions together as Gur-Arieh et al. recommend); a failed question
    leaves the latent unlabelled (explanation says why) and is asked again on the next run."""
    name = f"api:{client.cfg.model}"
    items = []
    for lat, ev in evidence.items():
        exs = (ev["top"] + ev["quantiles"])[:max_examples]
        output = (ev.get("output_side") or {}).get("text")
        parts = explain_parts(tpl, tags[lat], exs, layer_dir, output)
        if len(parts) <= 2 + bool(output):  # no example to show (e.g. audio, no clip written)
            continue
        items.append((lat, client.chat(tpl.text["explain_system"], parts), parse_label))
    answers = client.ask_many(items, desc="explain")
    out = {}
    for lat in evidence:
        label, err = answers.get(lat, (None, "no examples to show"))
        out[lat] = Label(label, label if err is None else f"failed: {err}", name)
    return out
