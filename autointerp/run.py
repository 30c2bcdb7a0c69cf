"""Modality-aware auto-interp of one SAE: stats → evidence → labels → detection scores.

    python -m autointerp.run --layer 12 [--explainer offline|api] [--scorer offline|api]

Writes into runs/tinycosy/autointerp/layer_L/: latents.jsonl, evidence/latent_XXXXX.json,
clips/*.wav, summary.json, figures.html (and stats.npz, api_cache.jsonl to resume). From a
notebook: `autointerp.run.run(AutointerpConfig(layer=12))` returns the summary dict.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from autointerp.api import CACHE, ChatClient
from autointerp.config import AutointerpConfig
from autointerp.evidence import Renderer, evidence_path, lens_entries, write_evidence
from autointerp.examples import Examples, Sampler
from autointerp.explain import Label, api_labels, offline_labels
from autointerp.intervention import Intervener
from autointerp.output_side import output_sides, render_choice, write_output_wavs
from autointerp.prompts import Templates, parse_matches, score_parts
from autointerp.report import figures, summary_lines
from autointerp.score import IdentityControl, OfflineScorer, by_modality, matches_score, shuffled
from interp.atomic import atomic_write_json, atomic_write_text
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import TABLE, load_table
from interp.models.backbone import Backbone
from interp.models.registry import load_backbone
from interp.paths import CONCEPTS_FILE
from interp.store.reader import ActivationStore
from interp.store.writer import fingerprint
from sae.attributes import Attributes, build_attributes
from sae.io import load_sae, read_cfg
from sae.latent_stats import LatentStats, latent_stats, modality_tags
from sae.planted import explain_mask, planted_recall

log = logging.getLogger(__name__)

PAPER_AUROC = {"text": 0.921, "audio": 0.653, "mixed": 0.558}  # CosyVoice3, arXiv 2606.10029
PROGRESS = "progress.json"


def check_inputs(cfg: AutointerpConfig) -> tuple[ActivationStore, list[dict]]:
    """The store, SAE and corpus exist and fit each other; else a one-line error."""
    sae_cfg = read_cfg(cfg.sae_dir)
    store = ActivationStore(cfg.store, cfg.layer)
    meta = sae_cfg.get("metadata", {})
    if meta.get("layer") is not None and int(meta["layer"]) != cfg.layer:
        raise ValueError(f"SAE {cfg.sae_dir} was trained on layer {meta['layer']}, not "
                         f"--layer {cfg.layer}")
    if int(sae_cfg["d_in"]) != store.d_model:
        raise ValueError(f"SAE {cfg.sae_dir} is {sae_cfg['d_in']} wide but store {cfg.store} "
                         f"holds {store.d_model}-wide activations")
    fp = meta.get("model_fingerprint")
    if fp and fp != store.manifest["spec"]["model"]:
        raise ValueError(f"SAE {cfg.sae_dir} was trained on model {fp}, store {cfg.store} "
                         f"comes from model {store.manifest['spec']['model']}")
    hook = meta.get("hook_name")
    if hook and not hook.endswith(store.hook):
        raise ValueError(f"SAE {cfg.sae_dir} reads {hook}, store {cfg.store} holds {store.hook}")
    rows = load_table(cfg.corpus)
    if store.manifest["spec"]["corpus"] != fingerprint(Path(cfg.corpus) / TABLE):
        raise ValueError(f"store {cfg.store} was cached from another corpus than {cfg.corpus}")
    return store, rows


@dataclass
class Context:
    """What the stages after the stats pass share."""

    cfg: AutointerpConfig
    stats: LatentStats
    rows: list[dict]
    tags: list[str]
    explain: np.ndarray
    attrs: Attributes
    renderer: Renderer
    draws: dict[int, Examples]


def build_context(cfg: AutointerpConfig, store: ActivationStore, rows: list[dict], sae,
                  out: Path, backbone: Backbone) -> Context:
    stats = latent_stats(store, sae, cfg.sae_dir, out)
    tags, _ = modality_tags(stats, cfg.n_modality, cfg.audio_threshold, cfg.text_threshold)
    explain = explain_mask(stats.meta, cfg.seed)
    text_ids = [int(i) for i in np.unique(stats.meta["token"][stats.meta["modality"] == 0])]
    token_text = dict(zip(text_ids, backbone.token_texts(text_ids), strict=True))
    attrs = build_attributes(stats.meta, rows, token_text,
                             backbone.special_id("<|endofprompt|>"), cfg.min_count)
    live = [lat for lat in range(stats.d_sae) if tags[lat] != "dead"][: cfg.max_latents or None]
    sampler = Sampler(stats, explain, cfg.seed)
    draws = {lat: sampler.draw(lat, cfg.n_top, cfg.n_quantile, cfg.n_random, cfg.n_score)
             for lat in tqdm(live, desc="sample examples", unit="latent")}
    renderer = Renderer(stats, rows, Path(cfg.corpus), token_text, out, cfg.window, cfg.clip_s)
    return Context(cfg, stats, rows, tags, explain, attrs, renderer, draws)


def all_evidence(ctx: Context, lens: list[dict], out: Path, outputs: list[dict | None],
                 backbone: Backbone) -> dict[int, dict]:
    """Write (or, when the settings match a previous run, reload) every live latent's file,
    with its output side (and, for the `n_output_wavs` densest, its rendered codes)."""
    cfg = ctx.cfg
    keys = ("n_top", "n_quantile", "n_random", "n_clips", "window", "clip_s", "seed",
            "n_modality", "audio_threshold", "text_threshold", "corpus", "model",
            "n_output_wavs", "n_intervene", "intervene_singled_out", "intervene_sentences",
            "intervene_strength")
    key = hashlib.sha256(json.dumps({"stats": (out / "stats.npz").stat().st_mtime_ns,
                                     **{k: getattr(cfg, k) for k in keys}}).encode()).hexdigest()
    progress = out / PROGRESS
    same = progress.exists() and json.loads(progress.read_text()).get("evidence") == key
    if not same:
        atomic_write_json(progress, {"evidence": key})
    render = render_choice(backbone, {lat: float(ctx.stats.density[lat]) for lat in ctx.draws},
                           cfg.n_output_wavs)
    evidence = {}
    for lat, ex in tqdm(ctx.draws.items(), desc="evidence", unit="latent"):
        path = out / evidence_path(lat)
        if same and path.exists():
            evidence[lat] = json.loads(path.read_text())
            continue
        output = outputs[lat]
        if output is not None and lat in render:
            output = write_output_wavs(backbone, output, out, lat)
        evidence[lat] = write_evidence(ctx.renderer, lat, ex, ctx.tags[lat], lens[lat],
                                       cfg.n_clips, output)
    return evidence


def densest(ctx: Context, n: int) -> list[int]:
    """The n densest latents with evidence (all when n < 0)."""
    order = sorted(ctx.draws, key=lambda lat: (-float(ctx.stats.density[lat]), lat))
    return order if n < 0 else order[:n]


def singled_out(recall: dict, sae_dir: Path, per_target: int = 3) -> list[int]:
    """The latents a person is pointed to: each planted concept's best latent (per position,
    and per utterance where that is another), then the first `per_target` latents of every
    target in the SAE's steering selection (`concepts.json`), in that order, once each."""
    found = [lat for r in recall.get("concepts", [])
             for lat in (r["best_latent"], r.get("utterance_latent", r["best_latent"]))]
    path = Path(sae_dir) / CONCEPTS_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        found += [int(lat) for targets in saved.get("concepts", {}).values()
                  for sel in targets.values() for lat in sel.get("latents", [])[:per_target]]
    return list(dict.fromkeys(int(lat) for lat in found))


def intervention_scores(ctx: Context, evidence: dict[int, dict], backbone: Backbone, sae,
                        hook: str, out: Path, also: Iterable[int] = ()) -> None:
    """Steer the `n_intervene` densest latents, and `also` (latents singled out elsewhere),
    alone and listen (`autointerp.intervention`); each result goes into the latent's evidence
    file (kept when a previous run made it)."""
    cfg = ctx.cfg
    chosen = dict.fromkeys([*densest(ctx, cfg.n_intervene), *also])
    todo = [lat for lat in chosen if lat in evidence and "intervention" not in evidence[lat]]
    if not todo:
        return
    iv = Intervener(backbone, sae, hook, cfg.corpus, cfg.intervene_sentences,
                    cfg.intervene_strength, cfg.seed)
    for lat in tqdm(todo, desc="intervene", unit="latent"):
        evidence[lat]["intervention"] = iv.score(lat, float(ctx.stats.max_act[lat]))
        atomic_write_json(out / evidence_path(lat), evidence[lat])


def client_for(cfg: AutointerpConfig, out: Path) -> ChatClient:
    return ChatClient(cfg.api_config(), out / CACHE)


def score_examples(ctx: Context, lat: int) -> tuple[np.ndarray, list[dict]]:
    """Held-out examples of one latent in a seeded shuffled order: (is-active, rendered)."""
    ex = ctx.draws[lat]
    pos = np.concatenate([ex.score_pos, ex.score_neg]).astype(np.int64)
    y = np.r_[np.ones(len(ex.score_pos), bool), np.zeros(len(ex.score_neg), bool)]
    perm = np.random.default_rng([ctx.cfg.seed, lat, 17]).permutation(len(pos))
    pos, y = pos[perm], y[perm]
    acts = ctx.stats.dense(lat)
    rendered = ctx.renderer.examples(pos, acts, ctx.tags[lat], f"score_latent_{lat:05d}",
                                     len(pos))
    meta = ctx.stats.meta
    for p, r in zip(pos, rendered, strict=True):
        if r["clip"] is not None:  # where in the clip the position itself sounds
            r["t_center"] = float(meta["t0"][p] + meta["t1"][p]) / 2 - r["clip"]["t0"]
    return y, rendered


def api_scores(ctx: Context, client: ChatClient, labels: dict[int, str | None],
               assign: dict[int, int], desc: str) -> dict[int, dict]:
    """Score latent `lat` with the label of latent `assign[lat]` (itself, or shuffled)."""
    tpl = Templates.load()
    items, truth = [], {}
    for lat in tqdm(assign, desc=f"render {desc}", unit="latent"):
        label = labels.get(assign[lat])
        if label is None or not len(ctx.draws[lat].score_pos):
            continue
        y, exs = score_examples(ctx, lat)
        truth[lat] = y
        parts = score_parts(tpl, label, exs, ctx.renderer.out)
        items.append((lat, client.chat(tpl.text["score_system"], parts), parse_matches(len(y))))
    answers = client.ask_many(items, desc=desc)
    return {lat: matches_score(truth[lat], answers[lat][0]) if lat in answers
            else matches_score(np.zeros(0), None) for lat in assign}


def identity_scores(ctx: Context) -> dict[int, dict]:
    """The input-identity control on every sampled latent's held-out examples (no label)."""
    ic = IdentityControl(ctx.stats, ctx.explain)
    return {lat: ic.score(lat, ex.score_pos, ex.score_neg) for lat, ex in ctx.draws.items()}


CONTEXTUAL = 0.5
"""A latent is contextual when at least this share of its held-out firing positions have a
silent occurrence of the same token to pair with (`Sampler.same_token_negatives`)."""


def token_matched_scores(ctx: Context, labels: dict[int, Label]) -> tuple[dict, dict]:
    """Detection with each firing position paired with a silent occurrence of the same token
    (offline scorer; {} for the API scorer, which would need a second round of calls): (label
    scores, shuffled-label scores), each latent's with `coverage`, the share of its positives
    that found a pair. The input-identity control is 0.5 here by construction, so what a label
    scores above 0.5 is what it explains beyond the token — the figure that tells a trained
    model's latents from a random model's token detectors (docs/autointerp.md)."""
    if ctx.cfg.scorer != "offline":
        return {}, {}
    lats = [lat for lat in ctx.draws if labels[lat].label is not None]
    control = shuffled(lats, ctx.cfg.seed)
    sc, sampler = OfflineScorer(ctx.stats, ctx.attrs), Sampler(ctx.stats, ctx.explain, ctx.cfg.seed)
    real, ctrl = {}, {}
    for lat in tqdm(lats, desc="score, same-token pairs", unit="latent"):
        pos = ctx.draws[lat].score_pos
        kept, neg = sampler.same_token_negatives(lat, pos)
        cover = {"coverage": round(len(kept) / max(len(pos), 1), 4)}
        real[lat] = sc.score(labels[lat].attribute, kept, neg) | cover
        ctrl[lat] = sc.score(labels[control[lat]].attribute, kept, neg) | cover
    return real, ctrl


def contextual(tags: list[str], scores: dict[int, dict]) -> dict:
    """Per modality: the share of scored latents that are contextual (`CONTEXTUAL`), and the
    mean same-token-pair AUROC over those."""
    ctx_only = {lat: s for lat, s in scores.items() if s["coverage"] >= CONTEXTUAL}
    share = {}
    for m in ("text", "audio", "mixed", "all"):
        flags = [lat in ctx_only for lat in scores if m in ("all", tags[lat])]
        share[m] = round(float(np.mean(flags)), 4) if flags else None
    return {"contextual_share": share, "auroc": by_modality(tags, ctx_only)}


def all_scores(ctx: Context, labels: dict[int, Label], out: Path) -> tuple[dict, dict, str]:
    """(scores, shuffled-label control scores, scorer name)."""
    cfg = ctx.cfg
    lats = [lat for lat in ctx.draws if labels[lat].label is not None]
    control = shuffled(lats, cfg.seed)
    if cfg.scorer == "offline":
        sc = OfflineScorer(ctx.stats, ctx.attrs)
        attr = {lat: labels[lat].attribute for lat in lats}
        real = {lat: sc.score(attr[lat], ctx.draws[lat].score_pos, ctx.draws[lat].score_neg)
                for lat in tqdm(lats, desc="score", unit="latent")}
        ctrl = {lat: sc.score(attr[control[lat]], ctx.draws[lat].score_pos,
                              ctx.draws[lat].score_neg) for lat in lats}
        return real, ctrl, "offline"
    client = client_for(cfg, out)
    text = {lat: labels[lat].label for lat in lats}
    real = api_scores(ctx, client, text, {lat: lat for lat in lats}, "score")
    ctrl = api_scores(ctx, client, text, control, "control")
    return real, ctrl, f"api:{cfg.api_model}"


def latent_record(ctx: Context, lat: int, label: Label | None, score: dict | None,
                  scorer: str, explainer: str, identity_auroc: float | None = None,
                  matched: dict | None = None) -> dict:
    st = ctx.stats
    dead = ctx.tags[lat] == "dead"
    speech = st.meta["modality"] == 1
    idx, val = st.column(lat)
    frac = None if dead else float(speech[idx[np.argsort(-val, kind="stable")
                                              [: ctx.cfg.n_modality]]].mean())
    score = score or {"auroc": None, "balanced_accuracy": None}
    return {"latent": lat, "density": float(st.density[lat]), "max_act": float(st.max_act[lat]),
            "mean_act": float(st.mean_act[lat]),
            "quantiles": [float(q) for q in st.quantiles[lat]], "modality": ctx.tags[lat],
            "speech_frac": frac, "label": label.label if label else None,
            "explanation": label.explanation if label else None,
            "explainer": label.explainer if label else explainer,
            "scores": {"auroc": score["auroc"], "balanced_accuracy": score["balanced_accuracy"],
                       "identity_auroc": identity_auroc,
                       "token_matched_auroc": (matched or {}).get("auroc"),
                       "token_matched_coverage": (matched or {}).get("coverage"),
                       "scorer": scorer},
            "evidence": evidence_path(lat) if lat in ctx.draws else None}


def run(cfg: AutointerpConfig) -> dict:
    """The whole pipeline; returns the summary (also written to summary.json)."""
    start, t = time.time(), {}
    cfg.check()
    store, rows = check_inputs(cfg)
    out = cfg.out_dir
    backbone = load_backbone(cfg.model, "cpu")
    if backbone.fingerprint != store.manifest["spec"]["model"]:
        raise ValueError(f"store {cfg.store} was not cached from {cfg.model}; pass the --model "
                         "it came from")
    sae = load_sae(cfg.sae_dir, backbone)
    out.mkdir(parents=True, exist_ok=True)  # after the inputs load: a bad one leaves no folder
    ctx = build_context(cfg, store, rows, sae, out, backbone)
    t["stats_s"] = time.time() - start
    logits = backbone.logit_lens(sae.W_dec.detach()).cpu()  # (d_sae, n_speech)
    evidence = all_evidence(ctx, lens_entries(logits), out,
                            output_sides(logits, backbone.code_profile()), backbone)
    t["evidence_s"] = time.time() - start - sum(t.values())
    # planted recall reads only the statistics: first, so interventions can follow its latents
    recall = planted_recall(ctx.stats, ctx.attrs, ctx.explain, np.array(list(ctx.draws)),
                            cfg.seed, table=rows)
    if cfg.n_intervene or cfg.intervene_singled_out:
        hook = (read_cfg(cfg.sae_dir).get("metadata", {}).get("hook_name")
                or f"blocks.{cfg.layer}.{store.hook}")
        also = singled_out(recall, cfg.sae_dir) if cfg.intervene_singled_out else []
        intervention_scores(ctx, evidence, backbone, sae, hook, out, also)
        t["intervene_s"] = time.time() - start - sum(t.values())
    if cfg.explainer == "offline":
        labels = offline_labels(ctx.stats, ctx.attrs, ctx.explain, list(ctx.draws),
                                cfg.max_terms)
    else:
        labels = api_labels(client_for(cfg, out), Templates.load(), evidence, ctx.tags, out)
    t["explain_s"] = time.time() - start - sum(t.values())
    scores, control, scorer = all_scores(ctx, labels, out)
    identity = identity_scores(ctx)
    matched, matched_ctrl = token_matched_scores(ctx, labels)
    t["score_s"] = time.time() - start - sum(t.values())
    explainer = "offline" if cfg.explainer == "offline" else f"api:{cfg.api_model}"
    records = [latent_record(ctx, lat, labels.get(lat), scores.get(lat), scorer, explainer,
                             identity.get(lat, {}).get("auroc"), matched.get(lat))
               for lat in range(ctx.stats.d_sae)]
    atomic_write_text(out / "latents.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    t["total_s"] = time.time() - start
    summary = {"layer": cfg.layer, "n_latents": ctx.stats.d_sae,
               "n_positions": ctx.stats.n_positions,
               "modality_counts": {m: ctx.tags.count(m) for m in ("audio", "text", "mixed",
                                                                  "dead")},
               "auroc_by_modality": by_modality(ctx.tags, scores),
               "balanced_accuracy_by_modality": by_modality(ctx.tags, scores,
                                                            "balanced_accuracy"),
               "shuffled_control": by_modality(ctx.tags, control),
               "identity_control": by_modality(ctx.tags, identity),
               "token_matched": contextual(ctx.tags, matched) | {
                   "shuffled_control": contextual(ctx.tags, matched_ctrl)["auroc"],
                   "threshold": CONTEXTUAL} if matched else None,
               "paper_auroc_cosyvoice3": PAPER_AUROC, "planted_recall": recall,
               "settings": {**cfg.to_dict(), "sae": str(cfg.sae_dir), "out": str(out)},
               "timings": {k: round(v, 2) for k, v in t.items()}}
    summary["figures"] = figures(records, summary, out)
    atomic_write_json(out / "summary.json", summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m autointerp.run",
                                     description=__doc__.split("\n\n")[0])
    add_config_args(parser, AutointerpConfig)
    cfg = config_from_args(AutointerpConfig, parser.parse_args())
    summary = run(cfg)
    print("\n".join(summary_lines(summary)))
    print(f"wrote {cfg.out_dir}/latents.jsonl, summary.json, figures.html")


if __name__ == "__main__":
    run_cli(main)
