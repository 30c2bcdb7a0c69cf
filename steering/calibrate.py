"""Latents chosen by what they do, not by what they read (the `sae_effect` method).

Contrastive selection (`steering.select`) ranks latents by how much more they fire on the
concept's group, times how much their decoder direction carries the difference of means. That
says what a latent *reads*; whether pushing it makes the model *produce* the concept is another
question (Arad et al., EMNLP 2025: filtering latents by their output effect steers 2–3× better
on text LMs). Here each of the top `candidates` contrastive latents is steered alone, at an edit
of `strength` ‖Δμ‖ (its amount c = ‖Δμ‖ / ‖W_dec,i‖, clamped like the `sae` method), on
`items` calibration items: held-out sentences that come after the experiment's own `n` in the
same seeded plan, so no evaluation item is used to choose. Each candidate gets the frontier's
score (`steering.score`: harmonic mean of concept success and content kept, over the items) and
a graded effect: the instrument's move toward the target in log-odds (for rate, the log duration
ratio) over the unsteered output's, times the content kept — one latent alone rarely reaches a
target, so the graded move is what separates them. Ranked by score, then effect, the best `k`
with a positive effect are kept, their amounts proportional to it and scaled, as every method's,
to an edit of norm ‖Δμ‖ per unit of strength.

The outputs live in `<out>/calibration/` (rows.jsonl, wavs: a killed run resumes there), the
ranking in `<out>/calibration/effect.json`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from interp.atomic import atomic_write_json
from steering.experiment import NONE, TTS_METHODS, Steerer, TTSItem, Unit, plan_items, run_units
from steering.score import graded, point_score, row_wer, scored, success, wer_decode
from steering.select import TargetSelection

log = logging.getLogger(__name__)

FOLDER, EFFECT = "calibration", "effect.json"


@dataclass(frozen=True)
class CalibrationConfig:
    """How the `sae_effect` latents are chosen."""

    candidates: int = 24
    """top contrastive latents tried one at a time"""
    items: int = 12
    """calibration items (held-out sentences after the experiment's own)"""
    strength: float = 4.0
    """each candidate's edit, in units of ‖Δμ‖"""

    def validate(self) -> None:
        if self.candidates < 1 or self.items < 1 or not self.strength > 0:
            raise ValueError("calibration needs candidates >= 1, items >= 1 and strength > 0")


def calibration_items(steerer: Steerer, corpus: str, n: int, cfg: CalibrationConfig, seed: int,
                      like: list[TTSItem]) -> list[TTSItem]:
    """The `cfg.items` held-out items after the first `n` of the same plan (indices n…), with
    the concept and classifier of the experiment's items."""
    concept = like[0].concept if like else None
    classifier = like[0].classifier if like else None
    items = plan_items(steerer.engine, corpus, n + cfg.items, seed, concept, classifier)[n:]
    if not items:
        raise ValueError(f"{corpus} has no held-out sentences beyond the {n} evaluated; lower "
                         "--n or --calibrate-items")
    return items


def single_latent(sel: TargetSelection, latent: int, w_norm: float) -> TargetSelection:
    """`sel` steering one latent, whose unit edit has norm ‖Δμ‖."""
    return replace(sel, latents=[latent], amounts=[sel.unit / max(w_norm, 1e-12)])


def rank(rows: list[dict], targets: dict[str, TargetSelection], wer_field: str = "wer"
         ) -> dict[str, list[dict]]:
    """Per target, every candidate's mean success, WER rise and score over the calibration
    items, best first; `success_gain` is over the unsteered outputs' success."""
    base = {r["item"]: r for r in rows if r["method"] == "none"}
    out: dict[str, list[dict]] = {}
    for t in targets:
        mine = [b for b in base.values() if scored(t, b.get("voice_gender"))]
        floor = float(np.mean([success(t, b, b) for b in mine])) if mine else 0.0
        per: dict[int, list[tuple[float, float, float]]] = {}
        for r in rows:
            name, _, latent = str(r["target"]).partition("@")
            if r["method"] == "none" or name != t or r["item"] not in base:
                continue
            b = base[r["item"]]
            if scored(t, b.get("voice_gender")):
                g, g0 = graded(t, r, b), graded(t, b, b)
                per.setdefault(int(latent), []).append(
                    (success(t, r, b), row_wer(r, wer_field) - row_wer(b, wer_field),
                     0.0 if g is None or g0 is None else g - g0))
        ranked = []
        for latent, ms in per.items():
            s, rise, g = (float(np.mean([m[i] for m in ms])) for i in range(3))
            kept = 1 - min(1.0, max(0.0, rise))
            ranked.append({"latent": latent, "success": round(s, 4),
                           "success_gain": round(s - floor, 4), "wer_rise": round(rise, 4),
                           "score": round(float(point_score(s, rise)), 4),
                           "graded_gain": round(g, 4), "effect": round(g * kept, 4),
                           "n": len(ms)})
        # the frontier's score where a single latent already reaches the target; else (the
        # common case: one latent alone rarely does) the graded move toward it, discounted by
        # the words it costs
        out[t] = sorted(ranked, key=lambda c: (-round(c["score"], 2), -c["effect"], c["latent"]))
    return out


def effect_selection(sel: TargetSelection, ranked: list[dict], w_dec: np.ndarray, k: int
                     ) -> TargetSelection:
    """`sel` with the best `k` candidates whose success rose as its `sae_effect` latents,
    amounts ∝ their success gain, scaled to an edit of norm ‖Δμ‖ (none rose: the single best
    candidate, so the method still runs and its frontier says it failed)."""
    keep = [c for c in ranked if c["effect"] > 0][:k] or ranked[:1]
    if not keep:
        return sel
    lat = [c["latent"] for c in keep]
    gain = np.array([max(c["effect"], 1e-3) for c in keep])
    v = gain @ w_dec[lat]
    amounts = gain * (sel.unit / max(float(np.linalg.norm(v)), 1e-12))
    return replace(sel, effect_latents=lat, effect_amounts=[float(a) for a in amounts])


@torch.no_grad()
def calibrate(steerer: Steerer, selection: dict[str, TargetSelection], items: list[TTSItem],
              out: Path, cfg: CalibrationConfig, k: int, batch_size: int = 8
              ) -> dict[str, TargetSelection]:
    """The selection with every target's `sae_effect` latents filled in (resumes from
    `out/calibration`); writes the ranking to effect.json."""
    cfg.validate()
    folder = out / FOLDER
    settings = {"candidates": cfg.candidates, "items": len(items), "strength": cfg.strength,
                "k": k}
    made = read_effect(out)
    if made is not None and {key: made["config"].get(key) for key in settings} != settings:
        # the run's sae_effect outputs were made with the latents of that calibration
        raise ValueError(f"{folder} holds a calibration made with {made['config']} (now "
                         f"{settings}); use --out, or the same --calibrate-* settings")
    folder.mkdir(parents=True, exist_ok=True)
    w_dec = steerer.sae.W_dec.detach().float().cpu().numpy()
    norms = np.linalg.norm(w_dec, axis=1)
    singles: dict[str, TargetSelection] = {}
    for t, sel in selection.items():
        pool = sel.candidates or sel.latents  # a selection saved before candidates were kept
        for i in pool[: cfg.candidates]:
            singles[f"{t}@{i}"] = single_latent(sel, i, float(norms[i]))
    cal = replace(steerer, selection=singles, scale=None)  # strengths in ‖Δμ‖, whatever the run
    sae = TTS_METHODS["sae"]
    units = [Unit(it, NONE, "-", 0.0) for it in items]
    units += [Unit(it, sae, name, cfg.strength) for name in singles for it in items
              if scored(name.partition("@")[0], it.gender)]
    rows = list(run_units(cal, units, folder, desc="calibrate (one latent at a time)",
                          batch_size=batch_size))
    field = wer_decode(rows)[1]  # as the frontier reads WER
    ranked = rank(rows, selection, field)
    chosen = {t: effect_selection(sel, ranked[t], w_dec, k) for t, sel in selection.items()}
    atomic_write_json(folder / EFFECT, {
        "config": {**settings, "wer_field": field},
        "targets": {t: {"chosen": chosen[t].effect_latents,
                        "amounts": [round(a, 4) for a in chosen[t].effect_amounts],
                        "contrastive": selection[t].latents, "ranked": ranked[t]}
                    for t in selection}})
    for t, s in chosen.items():
        top = ranked[t][:3]
        log.info("%s: sae_effect latents %s (contrastive %s); best alone: %s", t,
                 s.effect_latents, selection[t].latents,
                 ", ".join(f"{c['latent']} score {c['score']}" for c in top))
    return chosen


def read_effect(out: Path) -> dict | None:
    path = out / FOLDER / EFFECT
    return json.loads(path.read_text()) if path.exists() else None
