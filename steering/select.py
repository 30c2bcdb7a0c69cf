"""Which SAE latents carry a concept, and the matched baselines and controls.

Contrastive selection reads an activation store and the corpus's ground truth: speech positions
are grouped by a concept's groups (interp.concepts; the presets: laughter spans vs untagged
speech, male vs female speaker, slow vs fast rate; a concept of your own: any column or tag of the
corpus, `--concept whisper --groups style=whisper style=default`). For a target (group A against group B) with residual means μ_A, μ_B
and mean latent codes z̄_A, z̄_B, latent i scores

    score_i = (z̄_A,i − z̄_B,i) · ⟨W_dec,i, Δμ/‖Δμ‖⟩,   Δμ = μ_A − μ_B,

its activation change times how much its decoder direction carries the concept. The top k with a
positive change and a positive projection are steered; their amounts are proportional to the
change and scaled so that Σ c_i W_dec,i has the norm ‖Δμ‖ — one unit of strength is then an edit
of the same norm for every method: the decoder direction, the difference of means, random latents
of similar density and a random direction. Label search (autointerp `latents.jsonl`) restricts
the candidates to latents whose label names the concept.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from interp.concepts import (
    GROUPS_HELP,
    PRESET_TARGETS,
    PRESETS,
    Concept,
    CorpusGroups,
    preset,
    resolve,
)
from interp.corpus.table import load_table
from interp.paths import CONCEPTS_FILE
from interp.store.reader import ActivationStore
from interp.store.writer import MODALITY_CODES

log = logging.getLogger(__name__)

# concept → target → (group A, group B): steering toward A (the presets of interp.concepts)
CONCEPTS: dict[str, dict[str, tuple[str, str]]] = {
    name: {t.name: (t.positive.name, t.negative.name) for t in c.targets}
    for name, c in PRESETS.items()}
# Latents per target when no k is given. Gender is spread thinner over the SAE than laughter or
# rate: on the shipped model eight latents move P(male) to 0.10 toward female, sixteen to 0.000
# (8f: 0.29 and 0.001), with the same-norm diff-means direction at 0.000 (docs/steering.md).
DEFAULT_K = {"gender": 16}
LABEL_PATTERNS = {name: t.label_pattern for name, t in PRESET_TARGETS.items()}


def as_concept(concept: str | Concept) -> Concept:
    """A preset by name, or the concept itself."""
    return concept if isinstance(concept, Concept) else preset(concept)


def check_concept(concept: str | Concept) -> dict[str, tuple[str, str]]:
    """Target → (group A, group B) of a concept (a preset's name or a `Concept`)."""
    c = as_concept(concept)
    return {t.name: (t.positive.name, t.negative.name) for t in c.targets}


@dataclass
class GroupStats:
    """Running sums over one group of positions."""

    n: int
    sum_x: np.ndarray  # (D,)
    sum_z: np.ndarray  # (d_sae,)
    active: np.ndarray  # (d_sae,) count of positions where the latent fires

    def add(self, x: torch.Tensor, z: torch.Tensor) -> None:
        self.n += len(x)
        self.sum_x += x.sum(0).double().numpy()
        self.sum_z += z.sum(0).double().numpy()
        self.active += (z > 0).sum(0).numpy()

    @property
    def mean_x(self) -> np.ndarray:
        return self.sum_x / max(self.n, 1)

    @property
    def mean_z(self) -> np.ndarray:
        return self.sum_z / max(self.n, 1)


@torch.no_grad()
def group_stats(sae, store: ActivationStore, corpus: str | Path, concept: str | Concept,
                max_positions: int = 100_000, seed: int = 0) -> dict[str, GroupStats]:
    """Mean residual, mean code and firing counts of each group, from at most `max_positions`
    positions per group spread over the store's shards."""
    concept = as_concept(concept)
    rows = load_table(corpus)
    groups = CorpusGroups(concept, rows, str(corpus))
    d, d_sae = store.d_model, int(sae.W_dec.shape[0])
    stats: dict[str, GroupStats] = {}
    rng = np.random.default_rng(seed)
    per_shard = max(1, 2 * max_positions // max(len(store.shards), 1))
    for shard in tqdm(store.shards, desc=f"group stats ({concept.name})"):
        meta = store.meta(shard)
        if int(meta["utt"].max(initial=-1)) >= len(rows):
            raise ValueError(f"{store.folder} indexes utterances beyond {corpus}; give the corpus "
                             "the store was built from")
        acts = store.acts(shard)
        speech = meta["modality"] == MODALITY_CODES["speech"]
        for g, mask in groups.positions(meta, speech).items():
            st = stats.setdefault(g, GroupStats(0, np.zeros(d), np.zeros(d_sae),
                                                np.zeros(d_sae, np.int64)))
            idx = np.flatnonzero(mask)
            room = min(per_shard, max_positions - st.n)
            if room <= 0 or not len(idx):
                continue
            idx = np.sort(rng.choice(idx, min(room, len(idx)), replace=False))
            x = torch.from_numpy(np.asarray(acts[idx], dtype=np.float32))
            st.add(x, sae.encode(x))
    empty = [g for g, s in stats.items() if s.n == 0]
    if empty or not stats:
        counts = ", ".join(f"{g}: {s.n}" for g, s in stats.items())
        raise ValueError(f"no positions for group(s) {empty or list(stats)} of {concept.name!r} "
                         f"in {store.folder} (positions read: {counts or 'none'}; in "
                         f"{corpus}: {groups.describe()}); was the store cached over "
                         "utterances of both groups?")
    return stats


def label_candidates(path: str | Path, target: str, min_auroc: float = 0.0, pattern: str = ""
                     ) -> set[int] | None:
    """Latents whose autointerp label names the target (matches `pattern`, by default the
    preset's or the target's name; None when there are no results)."""
    path = Path(path)
    if not path.exists():
        log.info("no autointerp results at %s; selecting contrastively only", path)
        return None
    pat = re.compile(pattern or LABEL_PATTERNS.get(target) or re.escape(target), re.I)
    out = set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        auroc = (rec.get("scores") or {}).get("auroc")
        if pat.search(str(rec.get("label", ""))) and (auroc is None or auroc >= min_auroc):
            out.add(int(rec["latent"]))
    log.info("label search for %s: %d candidate latents in %s", target, len(out), path)
    return out


@dataclass(frozen=True)
class TargetSelection:
    """Latents, amounts and matched baselines/controls for steering toward one target."""

    target: str
    latents: list[int]
    amounts: list[float]
    scores: list[float]
    unit: float  # ‖Δμ‖: the edit norm of one unit of strength
    decoder: list[float]  # Σ c_i W_dec,i (norm `unit`)
    diffmeans: list[float]  # μ_A − μ_B
    random_latents: list[int]
    random_amounts: list[float]
    random_direction: list[float]
    n_positions: list[int]  # (group A, group B)
    source: str  # "contrastive" | "label"
    candidates: list[int] = field(default_factory=list)
    """the top latents by score (the chosen ones first): what steering.calibrate tries alone"""
    effect_latents: list[int] = field(default_factory=list)
    """latents chosen by their measured output effect (steering.calibrate; empty until then)"""
    effect_amounts: list[float] = field(default_factory=list)
    floor: float | None = None
    """the negative group's mean component along the difference of means (μ_B·Δμ/‖Δμ‖): the
    level `diffmeans_clamp` raises positions from (None: a selection saved before it)"""
    targeted: list[float] = field(default_factory=list)
    """the SAE-targeted steering vector, norm `unit` (steering.targeted; empty until fitted)"""
    shift_latents: list[int] = field(default_factory=list)
    """the `sae_shift` edit's latents: the top `shift_k` by score of either sign of change —
    raised where the target group has more of them, lowered where it has less"""
    shift_amounts: list[float] = field(default_factory=list)
    """their signed amounts ∝ z̄_A − z̄_B, scaled so that Σ c_i W_dec,i has the norm `unit`"""
    shift_k: int = 0
    """how many latents `shift_latents` was asked for (0: a selection saved before sae_shift)"""
    coverage: dict[str, float] = field(default_factory=dict)
    """how much of Δμ the top m latents carry: {m: cos(Σ_top m (z̄_A − z̄_B)_i W_dec,i, Δμ)}
    for m = 1, 2, 4, … (both signs, by score; "all": every latent): a concept that one latent
    holds is near 1 at m = 1, one spread over the dictionary only at hundreds"""


def _unit_amounts(w: np.ndarray, c: np.ndarray, norm: float) -> np.ndarray:
    v = c @ w
    return c * (norm / max(float(np.linalg.norm(v)), 1e-12))


def _density_matched(freq: np.ndarray, chosen: np.ndarray, rng: np.random.Generator
                     ) -> np.ndarray:
    """For each chosen latent, a random other live latent among the 5 closest in firing rate."""
    pool = [i for i in np.argsort(freq) if i not in set(chosen.tolist()) and freq[i] > 0]
    if not pool:
        raise ValueError("the SAE has no live latents besides the selected ones")
    rank = np.searchsorted(freq[pool], freq[chosen])
    picks: list[int] = []
    for r in rank:
        near = [p for p in pool[max(0, r - 3): r + 3] if p not in picks] or pool
        picks.append(int(rng.choice(near)))
    return np.array(picks)


def _floor(a: GroupStats, b: GroupStats) -> float:
    """The negative group's mean component along the difference of means μ_A − μ_B."""
    dmu = a.mean_x - b.mean_x
    return float(b.mean_x @ dmu / max(float(np.linalg.norm(dmu)), 1e-12))


def floor_of(stats: dict[str, GroupStats], target: str, concept: Concept) -> float:
    """`_floor` of `target`'s two groups (for a selection saved before floors were kept)."""
    t = next(t for t in concept.targets if t.name == target)
    return _floor(stats[t.positive.name], stats[t.negative.name])


N_CANDIDATES = 32  # latents kept as candidates for the calibrated selection
# Latents of the two-sided `sae_shift` edit. Gender is spread over hundreds of latents of the
# shipped SAE: the top 16 by score decode to a direction at cos 0.50 with Δμ, 128 at 0.85, 512
# at 0.96; on the gender frontier (N 24) 128 latents scored male 0.92, 512 0.98 and all 2,048
# 0.99, female 0.90 / 0.91 / 0.91 (docs/steering.md).
SHIFT_K = 512


def shift_selection(w: np.ndarray, dz: np.ndarray, score: np.ndarray, unit: float,
                    shift_k: int) -> dict:
    """The `sae_shift` fields of a TargetSelection: the top `shift_k` latents whose change
    (z̄_A − z̄_B) moves the residual along Δμ, of either sign, with signed amounts."""
    idx = np.array([int(i) for i in np.argsort(-score) if score[i] > 0][:shift_k], dtype=int)
    amounts = _unit_amounts(w[idx], dz[idx], unit) if len(idx) else np.zeros(0)
    return {"shift_latents": idx.tolist(), "shift_amounts": amounts.tolist(),
            "shift_k": shift_k}


def coverage(w: np.ndarray, dz: np.ndarray, score: np.ndarray, dmu: np.ndarray
             ) -> dict[str, float]:
    """TargetSelection.coverage: cosine with Δμ of the decoded change of the top m latents."""
    order = [int(i) for i in np.argsort(-score) if score[i] > 0]
    u = dmu / max(float(np.linalg.norm(dmu)), 1e-12)
    out: dict[str, float] = {}

    def cos(idx: list[int]) -> float:
        v = dz[idx] @ w[idx]
        return round(float(v @ u / max(float(np.linalg.norm(v)), 1e-12)), 4)

    m = 1
    while m < len(order):
        out[str(m)] = cos(order[:m])
        m *= 2
    if order:
        out["all"] = cos(list(range(len(dz))))
    return out


def shift_of(sae, stats: dict[str, GroupStats], target: str, concept: Concept,
             shift_k: int = SHIFT_K) -> dict:
    """`shift_selection` and `coverage` of `target`'s two groups (for a selection saved
    before sae_shift)."""
    t = next(t for t in concept.targets if t.name == target)
    w, dmu, unit, dz, score = _contrast(sae, stats[t.positive.name], stats[t.negative.name])
    return {**shift_selection(w, dz, score, unit, shift_k),
            "coverage": coverage(w, dz, score, dmu)}


def _contrast(sae, a: GroupStats, b: GroupStats
              ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """(W_dec, Δμ, ‖Δμ‖, z̄_A − z̄_B, score) of group A against group B (the module docstring's
    score_i: each latent's change times its decoder direction's share of Δμ)."""
    w = sae.W_dec.detach().double().cpu().numpy()  # (d_sae, D)
    dmu, dz = a.mean_x - b.mean_x, a.mean_z - b.mean_z
    unit = float(np.linalg.norm(dmu))
    return w, dmu, unit, dz, dz * (w @ (dmu / max(unit, 1e-12)))


def select_target(sae, stats: dict[str, GroupStats], target: str, groups: tuple[str, str],
                  k: int = 8, candidates: set[int] | None = None, seed: int = 0,
                  shift_k: int = SHIFT_K) -> TargetSelection:
    a, b = stats[groups[0]], stats[groups[1]]
    w, dmu, unit, dz, score = _contrast(sae, a, b)
    ok = (dz > 0) & (score > 0)
    source = "contrastive"
    if candidates:
        mask = np.zeros_like(ok)
        mask[list(c for c in candidates if c < len(ok))] = True
        if (ok & mask).any():
            ok, source = ok & mask, "label"
        else:
            log.warning("no labelled latent for %s moves with the concept; using contrastive", target)
    ranked = [int(i) for i in np.argsort(-score) if ok[i]]
    order = ranked[:k]
    if not order:
        raise ValueError(f"no SAE latent rises with {target!r} (group {groups[0]} vs {groups[1]})")
    chosen = np.array(order)
    amounts = _unit_amounts(w[chosen], dz[chosen], unit)
    rng = np.random.default_rng(seed)
    freq = (a.active + b.active) / max(a.n + b.n, 1)
    rand = _density_matched(freq, chosen, rng)
    mean_z = (a.sum_z + b.sum_z) / max(a.n + b.n, 1)
    rand_amounts = _unit_amounts(w[rand], np.maximum(mean_z[rand], 1e-6), unit)
    r = rng.standard_normal(w.shape[1])
    return TargetSelection(
        target, chosen.tolist(), amounts.tolist(), score[chosen].tolist(), unit,
        (amounts @ w[chosen]).tolist(), dmu.tolist(), rand.tolist(), rand_amounts.tolist(),
        (r * unit / np.linalg.norm(r)).tolist(), [a.n, b.n], source,
        ranked[:max(N_CANDIDATES, k)], floor=_floor(a, b),
        **shift_selection(w, dz, score, unit, shift_k), coverage=coverage(w, dz, score, dmu))


def select_concept(sae, store: ActivationStore, corpus: str | Path, concept: str | Concept,
                   k: int = 8, labels: str | Path | None = None, max_positions: int = 100_000,
                   seed: int = 0, min_auroc: float = 0.0, shift_k: int = SHIFT_K
                   ) -> dict[str, TargetSelection]:
    """Every target of a concept (a preset's name or a `Concept`); `labels` (autointerp
    latents.jsonl) enables label search."""
    concept = as_concept(concept)
    stats = group_stats(sae, store, corpus, concept, max_positions, seed)
    out = {}
    for t in concept.targets:
        target, groups = t.name, (t.positive.name, t.negative.name)
        cands = (label_candidates(labels, target, min_auroc, t.label_pattern) if labels
                 else None)
        out[target] = select_target(sae, stats, target, groups, k, cands, seed, shift_k)
        log.info("%s: latents %s (%s), unit edit norm %.3g, positions %s; Δμ carried by the "
                 "top m latents (cos): %s", target, out[target].latents, out[target].source,
                 out[target].unit, out[target].n_positions, out[target].coverage)
    return out


def default_k(concept: str) -> int:
    return DEFAULT_K.get(concept, 8)


def save_selection(sel: dict[str, TargetSelection]) -> dict:
    return {t: asdict(s) for t, s in sel.items()}


def load_selection(obj: dict) -> dict[str, TargetSelection]:
    return {t: TargetSelection(**s) for t, s in obj.items()}


def merge_selection(path: Path, sae_name: str, layer: int, fresh: dict, definitions: dict,
                    settings: dict, own: bool) -> dict:
    """concepts.json with `fresh` ({concept: saved selection}) beside what `path` already holds
    for the same SAE and layer (the presets and earlier concepts of your own); `definitions`:
    the concepts of your own among `fresh`, with how they were selected. A file of another SAE
    is replaced, unless a concept of your own is being added to it (`own`): that is refused."""
    saved: dict = {}
    if path.exists():
        saved = json.loads(path.read_text())
        if (saved.get("sae"), saved.get("layer")) != (sae_name, layer):
            if own:
                raise ValueError(f"{path} holds the latents of another SAE ({saved.get('sae')}, "
                                 f"layer {saved.get('layer')}); give --out")
            saved = {}
    # the top-level settings are the presets' (a concept of your own keeps its own with it)
    top = (own and {k: saved[k] for k in ("max_positions", "seed") if k in saved}) or settings
    defs = {k: v for k, v in (saved.get("definitions") or {}).items() if k not in fresh}
    defs.update(definitions)
    out = {"sae": sae_name, "layer": layer, **top,
           "concepts": {**(saved.get("concepts") or {}), **fresh}}
    if defs:
        out["definitions"] = defs
    return out


def main() -> None:
    """`python -m steering.select --sae DIR --store ACTS --corpus CORPUS`: the latents (and the
    matched baselines and controls) of every concept, written to `<sae>/concepts.json`, which
    `Workbench.steer` reads. `--concept NAME --groups POS [NEG]` selects a concept of your own
    from the corpus's columns or tags (interp.concepts), written beside the presets."""
    import argparse

    from interp.atomic import atomic_write_json
    from sae.io import load_sae, read_cfg

    p = argparse.ArgumentParser(prog="python -m steering.select", description=main.__doc__)
    p.add_argument("--sae", required=True, help="SAE folder (SAELens format)")
    p.add_argument("--store", required=True, help="activation store of that SAE's layer")
    p.add_argument("--corpus", required=True, help="corpus the store was cached from")
    p.add_argument("--concepts", default=",".join(CONCEPTS), help="comma-separated presets")
    p.add_argument("--concept", default="", help="one concept instead of --concepts: a preset, "
                   "or (with --groups) one of your own")
    p.add_argument("--groups", nargs="+", default=[], metavar="GROUP",
                   help=f"--concept's positive group and optionally its negative one (default: "
                   f"the rest); each {GROUPS_HELP}, e.g. style=whisper style=default")
    p.add_argument("--concept-instruction", default="", help="steering's prompt baseline for "
                   "--concept, e.g. 'Please whisper.' (kept in the definition)")
    p.add_argument("--concept-rubric", default="", help="the judge's question about <audio "
                   "output> for --concept, e.g. 'Is <audio output> whispered?'")
    p.add_argument("--k", type=int, default=0, help="latents per target (0: the concept's "
                   "default, 16 for gender, 8 otherwise)")
    p.add_argument("--max-positions", type=int, default=100_000, help="positions per group")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="default <sae>/concepts.json")
    a = p.parse_args()
    if a.concept:
        todo = [resolve(a.concept, a.groups, a.concept_instruction, a.concept_rubric)]
    elif a.groups or a.concept_instruction or a.concept_rubric:
        raise ValueError("--groups, --concept-instruction and --concept-rubric need --concept NAME")
    else:
        todo = [preset(c) for c in a.concepts.split(",")]
    layer = int(read_cfg(a.sae).get("metadata", {}).get("layer", 12))
    sae, store = load_sae(a.sae), ActivationStore(a.store, layer)
    concepts = {c.name: save_selection(select_concept(sae, store, a.corpus, c,
                                                      a.k or default_k(c.name), None,
                                                      a.max_positions, a.seed))
                for c in todo}
    defs = {c.name: {**c.to_dict(), "corpus": str(a.corpus), "max_positions": a.max_positions,
                     "seed": a.seed} for c in todo if not c.preset}
    out = Path(a.out or Path(a.sae) / CONCEPTS_FILE)
    atomic_write_json(out, merge_selection(out, Path(a.sae).name, layer, concepts, defs,
                                           {"max_positions": a.max_positions, "seed": a.seed},
                                           bool(defs)))
    for c, targets in concepts.items():
        for t, sel in targets.items():
            print(f"{c:9s} {t:9s} latents {sel['latents']}  (unit edit norm {sel['unit']:.3g}; "
                  f"Δμ carried by the top m latents, cos: {sel['coverage']})")
    print(f"→ {out}")


if __name__ == "__main__":
    from interp.cli import run_cli

    run_cli(main)
