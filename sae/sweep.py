"""`python -m sae.sweep --layers 0-23`: an SAE per layer, then the layer sweep figure.

Each layer's SAE is `python -m sae.train`'s (trained, resumed, or reused when finished) in
`<sae-root>/layer_L`, with the same flags for every layer. On held-out positions the sweep then
measures the modality composition of its latents by the paper's rule (`sae.modality`): a latent
is *audio-modal* when more than 80% of its top activations sit on speech positions, *text-modal*
below 20%, *mixed* otherwise (only text and speech positions compete; latents with fewer than
`min_active` positive top activations count as inactive). Writes `<out>/sweep.json` and `<out>/sweep.html`:
explained variance (overall, text, speech), L0, dead and dense fractions, loss recovered and
modality composition per layer; and how well concepts sit in single latents (`sae.planted`,
`sae.stability`):
- **planted recall**: the share of the corpus's planted concepts that one latent detects at
  AUROC >= 0.9 on held-out speech positions (`planted_recall`) and, for utterance properties,
  by its mean over each utterance (`planted_utterance_recall`); the latent is chosen on one half
  of the held-out utterances and read on the other (auto-interp's recall, on these positions);
- **absorption**: per planted concept, how many latents it takes to reach AUROC 0.9 together
  (greedy forward selection of summed, normalised activations, capped at `--absorption-cap`);
  `absorption_mean` over the concepts that get there (1 is ideal), `absorption_reached` their
  share;
- **seed stability** (`--stability-seed S`): a second SAE per layer from seed S, and the share
  of the first's live latents whose decoder direction has a cosine > `--stability-cos` with
  one of the second's (max-cosine, not a one-to-one matching).
To compare variants (`--architecture matryoshka`, `--modality speech`, `--d-sae`, `--k`), run one
sweep per variant with its own `--sae-root` and `--out` (docs/sae.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from interp.atomic import atomic_write_json
from interp.cache import parse_hook_kind, parse_layers
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import TABLE, load_table
from interp.models.registry import load_backbone
from interp.store import MODALITY_CODES, ActivationStore, fingerprint, modality_mask
from sae.config import SAETrainConfig
from sae.data import eval_rows, split_shards
from sae.io import load_sae
from sae.metrics import encode_decode
from sae.modality import modality_tag
from sae.planted import concept_metrics
from sae.stability import decoder_stability
from sae.train import open_store, train

log = logging.getLogger(__name__)

KEYS = ("explained_variance", "explained_variance_text", "explained_variance_speech", "l0",
        "dead_frac", "dense_frac", "loss_clean", "loss_spliced", "loss_zero", "loss_recovered",
        "architecture", "modality", "d_sae", "k", "prefix_explained_variance")


@dataclass(frozen=True)
class SweepConfig:
    """A layer sweep; every `python -m sae.train` flag but --layer and --out applies per layer."""

    layers: str = "0-23"
    """layers to sweep: 0-23, 4,12,20 or 12"""
    out: str = "runs/tinycosy/sweep"
    """where sweep.json and sweep.html go"""
    sae_root: str = "runs/tinycosy/sae"
    """SAEs are trained into (or read from) <sae-root>/layer_L"""
    top: int = 50
    """top activations per latent that decide its modality"""
    min_active: int = 5
    """positive top activations a latent needs to be classified at all"""
    planted: bool = True
    """measure planted-concept recall and absorption (reads the table of the --corpus the
    stores were cached from)"""
    concept_store: str = ""
    """store whose positions the planted-concept metrics read ('' = --store's held-out
    shards), e.g. a `--split heldout_sentences,heldout_voices` store of the same layers: what
    auto-interp reads"""
    concept_positions: int = 200_000
    """at most about this many of its positions (whole shards, in order)"""
    absorption_cap: int = 16
    """most latents absorption gathers for one concept before calling it unreached"""
    stability_seed: int = -1
    """also train each layer's SAE from this seed (into <sae-root>/layer_L_seedS) and report
    the share of latents both find (-1 = off)"""
    stability_cos: float = 0.7
    """decoder cosine above which a latent counts as found by the other seed's SAE"""


@torch.no_grad()
def top_codes(sae, x: Tensor, codes: np.ndarray, top: int, chunk: int = 4096
              ) -> tuple[Tensor, Tensor]:
    """(values, modality codes), each (top, d_sae): every latent's `top` largest activations
    over the text and speech rows of x (n, d), and the modality of the row each came from."""
    keep = np.isin(codes, [MODALITY_CODES["text"], MODALITY_CODES["speech"]])
    x, codes_t = x[torch.from_numpy(keep)], torch.from_numpy(codes[keep].astype(np.int64))
    dev = next(sae.parameters()).device
    d_sae = sae.cfg.d_sae
    vals = torch.zeros(0, d_sae)
    mods = torch.zeros(0, d_sae, dtype=torch.long)
    for i in range(0, len(x), chunk):
        acts = sae.encode(x[i : i + chunk].to(dev)).float().cpu()  # (c, d_sae)
        c = codes_t[i : i + chunk, None].expand(-1, d_sae)
        vals, mods = torch.cat([vals, acts]), torch.cat([mods, c])
        best = vals.topk(min(top, len(vals)), dim=0).indices  # (top, d_sae)
        vals, mods = vals.gather(0, best), mods.gather(0, best)
    return vals, mods


def modality_composition(sae, x: Tensor, codes: np.ndarray, top: int = 50,
                         min_active: int = 5) -> dict:
    """Fractions of audio-, text-modal, mixed and inactive latents, and each latent's speech
    fraction of its top activations (None when inactive)."""
    vals, mods = top_codes(sae, x, codes, top)
    positive = vals > 0
    n_pos = positive.sum(0)
    speech = (positive & (mods == MODALITY_CODES["speech"])).sum(0).float()
    frac = speech / n_pos.clamp(min=1)
    active = n_pos >= min_active
    d_sae = len(n_pos)
    tags = [modality_tag(float(f)) if a else "inactive" for f, a in zip(frac, active, strict=True)]
    out = {f"{k}_frac": tags.count(k) / d_sae for k in ("audio", "text", "mixed", "inactive")}
    out["speech_frac_of_top"] = [round(float(f), 4) if a else None
                                 for f, a in zip(frac, active, strict=True)]
    return out


def figure(rows: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    layers = [r["layer"] for r in rows]
    fig = make_subplots(rows=3, cols=3, subplot_titles=(
        "explained variance", "L0", "dead / dense latents", "loss recovered",
        "latent modality (fraction of latents)", "",
        "planted concepts with a latent at AUROC ≥ 0.9", "absorption: latents to AUROC 0.9 "
        "(1 is ideal)", "seed stability (share of latents)"))

    def line(key, name, row, col):
        fig.add_trace(go.Scatter(x=layers, y=[r.get(key) for r in rows], name=name,
                                 mode="lines+markers"), row=row, col=col)

    for key, name in (("explained_variance", "EV all"), ("explained_variance_text", "EV text"),
                      ("explained_variance_speech", "EV speech")):
        line(key, name, 1, 1)
    line("l0", "L0", 1, 2)
    line("dead_frac", "dead", 1, 3)
    line("dense_frac", "dense", 1, 3)
    line("loss_recovered", "loss recovered", 2, 1)
    for key, name in (("audio_frac", "audio-modal"), ("mixed_frac", "mixed"),
                      ("text_frac", "text-modal"), ("inactive_frac", "inactive")):
        fig.add_trace(go.Bar(x=layers, y=[r[key] for r in rows], name=name), row=2, col=2)
    line("planted_recall", "recall (positions)", 3, 1)
    line("planted_utterance_recall", "recall (utterances)", 3, 1)
    line("planted_random_recall", "recall of a random latent", 3, 1)
    line("absorption_mean", "absorption (mean latents)", 3, 2)
    line("absorption_reached", "reached by a few latents together", 3, 1)
    line("seed_stability", "seed stability", 3, 3)
    fig.update_layout(barmode="stack", height=1000, title="SAE layer sweep")
    fig.update_xaxes(title_text="layer")
    return fig


def _ranks() -> tuple[int, int, object]:
    """(rank, world size, barrier) under torchrun, else (0, 1, no-op). Each rank drives its own
    GPU (LOCAL_RANK), so "cuda" in a rank means its device."""
    from interp.cache import distributed

    rank, world, barrier = distributed()
    if world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    return rank, world, barrier or (lambda: None)


def sweep(base: SAETrainConfig, sc: SweepConfig) -> list[dict]:
    """Train or reuse each layer's SAE, measure it, and write sweep.json + sweep.html. Under
    `torchrun --nproc-per-node N` the cache is split across ranks, rank r trains layers r, r+N,
    …, and rank 0 then measures every layer and writes the figure (others return [])."""
    backbone = load_backbone(base.model, base.device)
    layers = parse_layers(sc.layers, backbone.n_layers)
    kind = parse_hook_kind(base.hook)
    manifest = Path(base.store) / "manifest.json"
    if manifest.exists():
        have = json.loads(manifest.read_text())["spec"]["layers"]
        missing = [layer for layer in layers if layer not in have]
        if missing:
            raise ValueError(f"{base.store} caches layers {have}, not {missing}: pass --store with "
                             f"a new folder (the sweep caches {sc.layers} there first)")
    if sc.stability_seed == base.seed:
        raise ValueError(f"--stability-seed {sc.stability_seed} is the SAEs' own --seed; pick "
                         "another")
    rank, world, barrier = _ranks()
    open_store(dataclasses.replace(base, layer=layers[0]), kind, backbone,
               ",".join(map(str, layers)))
    configs = {layer: dataclasses.replace(base, layer=layer,
                                          out=str(Path(sc.sae_root) / f"layer_{layer}"))
               for layer in layers}
    twins = {layer: dataclasses.replace(
        cfg, seed=sc.stability_seed,
        out=str(Path(sc.sae_root) / f"layer_{layer}_seed{sc.stability_seed}"))
        for layer, cfg in configs.items()} if sc.stability_seed >= 0 else {}
    table = concept_table(base, sc, layers) if sc.planted else None  # checked before training
    for layer in layers[rank::world]:
        train(configs[layer], backbone)
        if layer in twins:
            train(twins[layer], backbone)
    barrier()
    if rank > 0:
        return []
    rows = [_measure(configs[layer], sc, backbone, table, twins.get(layer))
            for layer in layers]  # finished: report
    out = Path(sc.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", {"layers": rows, "config": dataclasses.asdict(base),
                                           "sweep": dataclasses.asdict(sc)})
    figure(rows).write_html(out / "sweep.html", include_plotlyjs=True)
    return rows


def concept_source(cfg: SAETrainConfig, sc: SweepConfig) -> tuple[ActivationStore, list[str]]:
    """The store and shards (up to about `concept_positions` positions) the planted-concept
    metrics of `cfg.layer` read."""
    if sc.concept_store:
        store = ActivationStore(sc.concept_store, cfg.layer)
        model = json.loads((Path(cfg.store) / "manifest.json").read_text())["spec"]["model"]
        if store.manifest["spec"]["model"] != model:
            raise ValueError(f"--concept-store {sc.concept_store} was cached from another model "
                             f"than {cfg.store}; cache it from the same --model")
        shards = list(store.shards)
    else:
        store = ActivationStore(cfg.store, cfg.layer)
        shards = split_shards(store, cfg.eval_frac)[1]
    take, n = [], 0
    for shard in shards:
        if n >= sc.concept_positions:
            break
        take.append(shard)
        n += int(store.manifest["shards"][shard])
    return store, take


def concept_table(cfg: SAETrainConfig, sc: SweepConfig, layers: tuple[int, ...]) -> list[dict]:
    """The corpus table the planted concepts come from, checked against every store the
    concept metrics will read (a one-line error names a missing or foreign corpus)."""
    path = Path(cfg.corpus) / TABLE
    if not path.exists():
        raise FileNotFoundError(f"no corpus table {path}: the planted-concept metrics read it; "
                                "pass the --corpus the store was cached from, or --no-planted")
    fp = fingerprint(path)
    for layer in layers:
        store, _ = concept_source(dataclasses.replace(cfg, layer=layer), sc)
        if store.manifest["spec"]["corpus"] != fp:
            raise ValueError(f"{store.folder} was cached from another corpus than "
                             f"{cfg.corpus}; pass the --corpus it came from, or --no-planted")
    return load_table(cfg.corpus)


def _live(sae, x: torch.Tensor) -> torch.Tensor:
    """(d_sae,) bool: latents that fire on at least one row of x."""
    return encode_decode(sae, x, 4096)[2] > 0


def _measure(cfg: SAETrainConfig, sc: SweepConfig, backbone, table: list[dict] | None,
             twin: SAETrainConfig | None) -> dict:
    m = train(cfg, backbone)
    store = ActivationStore(cfg.store, cfg.layer)
    x, codes = eval_rows(store, split_shards(store, cfg.eval_frac)[1], cfg.eval_rows, cfg.seed)
    sae = load_sae(cfg.out_dir)
    comp = modality_composition(sae, x, codes, sc.top, sc.min_active)
    row = {"layer": cfg.layer, "hook": m["hook"], **{k: m.get(k) for k in KEYS}, **comp}
    log.info("layer %d: EV %.3f, audio/mixed/text %.2f/%.2f/%.2f", cfg.layer,
             m["explained_variance"], comp["audio_frac"], comp["mixed_frac"], comp["text_frac"])
    if table is not None:
        cstore, shards = concept_source(cfg, sc)
        cm = concept_metrics(sae, cstore, shards, table, cfg.seed, cfg.modality_filter,
                             sc.absorption_cap)
        rec, ab = cm["recall"], cm["absorption"]
        row.update({"planted_recall": rec["recall"],
                    "planted_utterance_recall": rec.get("utterance_recall"),
                    "planted_random_recall": rec["random_recall"],
                    "planted_mean_auroc": rec["mean_auroc"], "absorption_mean": ab["mean"],
                    "absorption_reached": ab["reached"],
                    "planted_ceiling": cm["residual_ceiling"]["ceiling_recall"],
                    "planted_ceiling_utterance": cm["residual_ceiling"]["ceiling_utterance_recall"],
                    "planted": {"store": str(cstore.folder), "shards": shards, **cm}})
        log.info("layer %d: planted recall %s (utterances %s), absorption %s (reached %s)",
                 cfg.layer, rec["recall"], rec.get("utterance_recall"), ab["mean"],
                 ab["reached"])
    if twin is not None:
        train(twin, backbone)
        other = load_sae(twin.out_dir)
        if cfg.modality_filter is not None:
            x = x[torch.from_numpy(modality_mask(codes, cfg.modality_filter))]
        st = decoder_stability(sae.W_dec.detach(), other.W_dec.detach(), _live(sae, x),
                               _live(other, x), sc.stability_cos)
        row.update({"seed_stability": st["share"],
                    "stability": {**st, "seed": twin.seed, "other": str(twin.out_dir)}})
        log.info("layer %d: seed stability %s", cfg.layer, st["share"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sae.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, SweepConfig)
    add_config_args(parser, SAETrainConfig, skip=("layer", "out"))
    args = parser.parse_args()
    sc = config_from_args(SweepConfig, args)
    base = dataclasses.replace(config_from_args(SAETrainConfig, args), out="")
    torch.set_num_threads(base.threads or os.cpu_count() or 1)
    rows = sweep(base, sc)
    if not rows:  # a torchrun rank other than 0
        return
    print(f"\n{'layer':>5} {'EV':>6} {'EV txt':>6} {'EV sp':>6} {'L0':>6} {'dead':>6} "
          f"{'rec':>6} {'audio':>6} {'mixed':>6} {'text':>6} {'pl.pos':>6} {'pl.utt':>6} "
          f"{'absorb':>6} {'stable':>6}")
    for r in rows:
        cells = [r["explained_variance"], r["explained_variance_text"],
                 r["explained_variance_speech"], r["l0"], r["dead_frac"], r["loss_recovered"],
                 r["audio_frac"], r["mixed_frac"], r["text_frac"], r.get("planted_recall"),
                 r.get("planted_utterance_recall"), r.get("absorption_mean"),
                 r.get("seed_stability")]
        print(f"{r['layer']:>5} " + " ".join("     —" if c is None else f"{c:6.3f}"
                                             for c in cells))
    print(f"→ {sc.out}/sweep.json, sweep.html")


if __name__ == "__main__":
    run_cli(main)
