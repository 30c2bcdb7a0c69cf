"""Which SAE latents carry a concept, and the matched baselines and controls.

Contrastive selection reads an activation store and the corpus's ground truth: speech positions
are grouped by the utterance they come from (laughter spans vs untagged speech; male vs female
speaker; slow vs fast rate). For a target (group A against group B) with residual means μ_A, μ_B
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from interp.corpus.table import load_table
from interp.store.reader import ActivationStore
from interp.store.writer import MODALITY_CODES

log = logging.getLogger(__name__)

# concept → target → (group A, group B): steering toward A
CONCEPTS: dict[str, dict[str, tuple[str, str]]] = {
    "laughter": {"laughter": ("laughter", "no_laughter")},
    "gender": {"male": ("male", "female"), "female": ("female", "male")},
    "rate": {"slow": ("slow", "fast"), "fast": ("fast", "slow")},
}
# Latents per target when no k is given. Gender is spread thinner over the SAE than laughter or
# rate: on the shipped model eight latents move P(male) to 0.10 toward female, sixteen to 0.000
# (8f: 0.29 and 0.001), with the same-norm diff-means direction at 0.000 (docs/steering.md).
DEFAULT_K = {"gender": 16}
LABEL_PATTERNS = {
    "laughter": r"laugh|giggl|chuckl",
    "male": r"(?<!fe)\bmale\b|\bman\b|\bmen\b|low[- ]pitch|deep voice|masculine",
    "female": r"female|woman|women|high[- ]pitch|feminine",
    "slow": r"slow|drawn[- ]out|long (vowel|pause)",
    "fast": r"fast|quick|rapid|hurried",
}


def check_concept(concept: str) -> dict[str, tuple[str, str]]:
    if concept not in CONCEPTS:
        raise ValueError(f"unknown concept {concept!r}; choose from {sorted(CONCEPTS)}")
    return CONCEPTS[concept]


def _utterance_arrays(rows: list[dict]) -> dict[str, np.ndarray]:
    return {"male": np.array([r["gender"] == "male" for r in rows]),
            "female": np.array([r["gender"] == "female" for r in rows]),
            "slow": np.array([r["rate_bin"] == "slow" for r in rows]),
            "fast": np.array([r["rate_bin"] == "fast" for r in rows]),
            "untagged": np.array([not r["tags"] for r in rows])}


def laughter_positions(meta: dict[str, np.ndarray], rows: list[dict]) -> np.ndarray:
    """Speech positions whose time span overlaps a laughter span of their source utterance."""
    out = np.zeros(len(meta["utt"]), dtype=bool)
    speech = meta["modality"] == MODALITY_CODES["speech"]
    for u in np.unique(meta["src_utt"][speech]):
        spans = [(t["start"], t["end"]) for t in rows[u]["tags"] if t.get("tag") == "laughter"]
        if not spans:
            continue
        at = speech & (meta["src_utt"] == u)
        for a, b in spans:
            out |= at & (meta["t0"] < b) & (meta["t1"] > a)
    return out


def position_groups(concept: str, meta: dict[str, np.ndarray], rows: list[dict],
                    arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Boolean masks over a shard's positions, one per group of the concept."""
    speech = meta["modality"] == MODALITY_CODES["speech"]
    src = meta["src_utt"]
    if concept == "laughter":
        return {"laughter": laughter_positions(meta, rows),
                "no_laughter": speech & arrays["untagged"][src]}
    names = [g for pair in CONCEPTS[concept].values() for g in pair]
    return {g: speech & arrays[g][src] for g in dict.fromkeys(names)}


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
def group_stats(sae, store: ActivationStore, corpus: str | Path, concept: str,
                max_positions: int = 100_000, seed: int = 0) -> dict[str, GroupStats]:
    """Mean residual, mean code and firing counts of each group, from at most `max_positions`
    positions per group spread over the store's shards."""
    rows = load_table(corpus)
    arrays = _utterance_arrays(rows)
    d, d_sae = store.d_model, int(sae.W_dec.shape[0])
    stats: dict[str, GroupStats] = {}
    rng = np.random.default_rng(seed)
    per_shard = max(1, 2 * max_positions // max(len(store.shards), 1))
    for shard in tqdm(store.shards, desc=f"group stats ({concept})"):
        meta = store.meta(shard)
        if int(meta["utt"].max(initial=-1)) >= len(rows):
            raise ValueError(f"{store.folder} indexes utterances beyond {corpus}; give the corpus "
                             "the store was built from")
        acts = store.acts(shard)
        for g, mask in position_groups(concept, meta, rows, arrays).items():
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
        raise ValueError(f"no positions for group(s) {empty or list(stats)} of {concept!r} in "
                         f"{store.folder}; does the corpus have them?")
    return stats


def label_candidates(path: str | Path, target: str, min_auroc: float = 0.0) -> set[int] | None:
    """Latents whose autointerp label names the target (None when there are no results)."""
    path = Path(path)
    if not path.exists():
        log.info("no autointerp results at %s; selecting contrastively only", path)
        return None
    pat = re.compile(LABEL_PATTERNS[target], re.I)
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


def select_target(sae, stats: dict[str, GroupStats], target: str, groups: tuple[str, str],
                  k: int = 8, candidates: set[int] | None = None, seed: int = 0
                  ) -> TargetSelection:
    a, b = stats[groups[0]], stats[groups[1]]
    w = sae.W_dec.detach().double().cpu().numpy()  # (d_sae, D)
    dmu = a.mean_x - b.mean_x
    unit = float(np.linalg.norm(dmu))
    dz = a.mean_z - b.mean_z
    score = dz * (w @ (dmu / max(unit, 1e-12)))
    ok = (dz > 0) & (score > 0)
    source = "contrastive"
    if candidates:
        mask = np.zeros_like(ok)
        mask[list(c for c in candidates if c < len(ok))] = True
        if (ok & mask).any():
            ok, source = ok & mask, "label"
        else:
            log.warning("no labelled latent for %s moves with the concept; using contrastive", target)
    order = [i for i in np.argsort(-score) if ok[i]][:k]
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
        (r * unit / np.linalg.norm(r)).tolist(), [a.n, b.n], source)


def select_concept(sae, store: ActivationStore, corpus: str | Path, concept: str, k: int = 8,
                   labels: str | Path | None = None, max_positions: int = 100_000,
                   seed: int = 0, min_auroc: float = 0.0) -> dict[str, TargetSelection]:
    """Every target of a concept; `labels` (autointerp latents.jsonl) enables label search."""
    stats = group_stats(sae, store, corpus, concept, max_positions, seed)
    out = {}
    for target, groups in check_concept(concept).items():
        cands = label_candidates(labels, target, min_auroc) if labels else None
        out[target] = select_target(sae, stats, target, groups, k, cands, seed)
        log.info("%s: latents %s (%s), unit edit norm %.3g, positions %s", target,
                 out[target].latents, out[target].source, out[target].unit,
                 out[target].n_positions)
    return out


def default_k(concept: str) -> int:
    return DEFAULT_K.get(concept, 8)


def save_selection(sel: dict[str, TargetSelection]) -> dict:
    return {t: asdict(s) for t, s in sel.items()}


def load_selection(obj: dict) -> dict[str, TargetSelection]:
    return {t: TargetSelection(**s) for t, s in obj.items()}


def main() -> None:
    """`python -m steering.select --sae DIR --store ACTS --corpus CORPUS`: the latents (and the
    matched baselines and controls) of every concept, written to `<sae>/concepts.json`, which
    `Workbench.steer` reads."""
    import argparse

    from interp.atomic import atomic_write_json
    from sae.io import load_sae, read_cfg

    p = argparse.ArgumentParser(prog="python -m steering.select", description=main.__doc__)
    p.add_argument("--sae", required=True, help="SAE folder (SAELens format)")
    p.add_argument("--store", required=True, help="activation store of that SAE's layer")
    p.add_argument("--corpus", required=True, help="corpus the store was cached from")
    p.add_argument("--concepts", default=",".join(CONCEPTS), help="comma-separated concepts")
    p.add_argument("--k", type=int, default=0, help="latents per target (0: the concept's "
                   "default, 16 for gender, 8 otherwise)")
    p.add_argument("--max-positions", type=int, default=100_000, help="positions per group")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="default <sae>/concepts.json")
    a = p.parse_args()
    layer = int(read_cfg(a.sae).get("metadata", {}).get("layer", 12))
    sae, store = load_sae(a.sae), ActivationStore(a.store, layer)
    concepts = {c: save_selection(select_concept(sae, store, a.corpus, c, a.k or default_k(c),
                                                 None, a.max_positions, a.seed))
                for c in a.concepts.split(",") if check_concept(c)}
    out = Path(a.out or Path(a.sae) / "concepts.json")
    atomic_write_json(out, {"sae": Path(a.sae).name, "layer": layer, "max_positions":
                            a.max_positions, "seed": a.seed, "concepts": concepts})
    for c, targets in concepts.items():
        for t, sel in targets.items():
            print(f"{c:9s} {t:9s} latents {sel['latents']}  (unit edit norm {sel['unit']:.3g})")
    print(f"→ {out}")


if __name__ == "__main__":
    from interp.cli import run_cli

    run_cli(main)
