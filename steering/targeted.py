"""SAE-targeted steering, the `sae_ts` method (Chalnev, Siu & Conmy 2024, "Improving steering
vectors by targeting sparse autoencoder features").

Adding a latent's decoder direction to the residual does not only raise that latent in what the
model then says: it moves many others, and may barely move its own. SAE-TS measures what
steering vectors *do*, in SAE latents, and solves for the vector that does what is wanted:

1. **Probes.** Per target, P vectors of norm `strength` × ‖Δμ‖: the decoder directions of its
   top contrastive candidates, the difference of means, and `random` random directions; each
   is added at the hook (as every direction method is) while the calibration items are
   generated (held-out sentences after the experiment's own `n`, as `steering.calibrate`'s).
2. **Effects.** The generated speech tokens are read back by the *unsteered* model (teacher
   forced) and the SAE encodes its activations at the hook over the generated positions: a
   probe's effect is the mean latent code of its outputs minus the unsteered outputs', averaged
   over the items. It says what the steered speech *is*, not what the edit wrote.
3. **Solve.** Effects are taken as linear in the vector (E: P × d_sae; c·V has effect c·E). The
   wanted effect t raises the target's selected latents in proportion to their contrastive
   gain, as much as the difference of means raises them, and leaves every other latent where
   it was; c = argmin ‖c·E − t‖² + λ‖c‖² (ridge, λ a small share of E's energy) and the vector
   c·V is scaled, as every method's, to norm ‖Δμ‖ per unit of strength.

`<out>/targeted/` keeps each probe's per-item codes (probe_<target>_<j>.npy: a killed run
resumes) and `targeted.json`: per target, the probes, the linear model's predicted effect of the
solved vector, of the difference of means and of the SAE decoder direction on the target
latents and on the rest (how much it promised), and the vector itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from interp.atomic import atomic_save, atomic_write_json
from interp.hooks.capture import capture
from steering.experiment import NONE, TTS_METHODS, Steerer, TTSItem, Unit
from steering.score import scored
from steering.select import TargetSelection

log = logging.getLogger(__name__)

FOLDER, RESULT = "targeted", "targeted.json"


@dataclass(frozen=True)
class TargetedConfig:
    """How the `sae_ts` vector is fitted."""

    candidates: int = 24
    """decoder directions of the top contrastive latents among the probes"""
    random: int = 16
    """random directions among the probes"""
    items: int = 8
    """calibration items per target (held-out sentences after the experiment's own)"""
    strength: float = 4.0
    """each probe's norm, in units of ‖Δμ‖"""
    ridge: float = 1e-2
    """λ as a share of the probes' mean squared effect"""
    seed: int = 0

    def validate(self) -> None:
        if self.candidates < 0 or self.random < 0 or self.items < 1 or not self.strength > 0:
            raise ValueError("sae_ts needs candidates >= 0, random >= 0, items >= 1 and "
                             "strength > 0")
        if self.candidates + self.random < 2:
            raise ValueError("sae_ts needs at least two probes (--ts-candidates + --ts-random)")


def probes(sel: TargetSelection, w_dec: np.ndarray, cfg: TargetedConfig) -> np.ndarray:
    """(P, D) probe vectors of norm strength·‖Δμ‖: the difference of means, the candidates'
    decoder directions, then random directions (seeded per target)."""
    pool = (sel.candidates or sel.latents)[: cfg.candidates]
    rng = np.random.default_rng([cfg.seed, sum(map(ord, sel.target))])
    rows = [np.asarray(sel.diffmeans), *w_dec[pool],
            *rng.standard_normal((cfg.random, w_dec.shape[1]))]
    v = np.stack(rows).astype(np.float64)
    return v * (cfg.strength * sel.unit / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12))


@torch.no_grad()
def read_back(steerer: Steerer, items: list[TTSItem], tokens: list[list[int]]) -> np.ndarray:
    """(items, d_sae): the SAE's mean code over each item's generated positions when the
    unsteered model reads its generated tokens (zeros for an empty output)."""
    engine, sae, hook = steerer.engine, steerer.sae, steerer.hook
    seqs, reqs = [], []
    for it, toks in zip(items, tokens, strict=True):
        req = engine.request(it.text, it.voice)
        reqs.append(req)
        seqs.append((req.text_ids, req.prompt, torch.tensor(toks, dtype=torch.long)))
    with capture(engine.model, [hook]) as cache:
        outs = engine.teacher_forced_batch(seqs)
    x = cache[hook]
    codes = np.zeros((len(items), sae.cfg.d_sae), np.float32)
    for i, (out, toks) in enumerate(zip(outs, tokens, strict=True)):
        if toks:
            rows = x[i, : len(out.modality)][-len(toks):]
            codes[i] = sae.encode(rows.to(engine.device).float()).mean(0).cpu().numpy()
    return codes


def generate(steerer: Steerer, sel: TargetSelection, vector: np.ndarray | None,
             items: list[TTSItem], batch_size: int) -> list[list[int]]:
    """The items' speech tokens with `vector` added at the hook (None: unsteered)."""
    if vector is None:
        st, units = steerer, [Unit(it, NONE, "-", 0.0) for it in items]
    else:  # a direction edit (the difference of means' hook) carrying the probe at strength 1
        name = f"{sel.target}#probe"
        probe = replace(sel, target=name, diffmeans=vector.tolist())
        st = replace(steerer, selection={**steerer.selection, name: probe}, scale=None)
        units = [Unit(it, TTS_METHODS["diffmeans"], name, 1.0) for it in items]
    out: list[list[int]] = []
    for at in range(0, len(units), max(1, batch_size)):
        out += st.tokens_batch(units[at: at + max(1, batch_size)])
    return out


def solve(effects: np.ndarray, vectors: np.ndarray, sel: TargetSelection, ridge: float
          ) -> tuple[np.ndarray, dict]:
    """The SAE-TS vector (norm ‖Δμ‖) from the probes' effects (P, d_sae) and vectors (P, D),
    with what the linear model predicts it, the difference of means (probe 0) and the SAE
    decoder direction do to the target's latents and to the rest."""
    lat = np.asarray(sel.latents)
    want = np.zeros(effects.shape[1])
    gain = np.asarray(sel.amounts, np.float64)
    gain = gain / max(float(np.linalg.norm(gain)), 1e-12)
    # as much as the difference of means raises the target latents, in their proportions
    want[lat] = gain * max(float(np.linalg.norm(effects[0, lat])), 1e-6)
    gram = effects @ effects.T
    lam = ridge * float(np.trace(gram)) / len(gram)
    c = np.linalg.solve(gram + lam * np.eye(len(gram)), effects @ want)
    v = c @ vectors
    v *= sel.unit / max(float(np.linalg.norm(v)), 1e-12)

    def predicted(vec: np.ndarray) -> dict:
        # the effect of `vec` under the linear model: least-squares coefficients over the probes
        coef = np.linalg.lstsq(vectors.T, vec, rcond=None)[0]
        e = coef @ effects
        rest = np.delete(e, lat)
        return {"target": round(float(e[lat] @ gain), 5),
                "off_target_rms": round(float(np.sqrt(np.mean(rest ** 2))), 5),
                "in_probe_span": round(float(np.linalg.norm(coef @ vectors)
                                             / max(np.linalg.norm(vec), 1e-12)), 4)}

    return v, {"sae_ts": predicted(v), "diffmeans": predicted(np.asarray(sel.diffmeans)),
               "decoder": predicted(np.asarray(sel.decoder)), "lambda": lam}


def fit_targeted(steerer: Steerer, selection: dict[str, TargetSelection],
                 items: list[TTSItem], out: Path, cfg: TargetedConfig, batch_size: int = 8
                 ) -> dict[str, TargetSelection]:
    """The selection with every target's `sae_ts` vector (resumes from `out/targeted`)."""
    cfg.validate()
    folder = out / FOLDER
    settings = {"candidates": cfg.candidates, "random": cfg.random, "items": cfg.items,
                "strength": cfg.strength, "seed": cfg.seed}
    path = folder / RESULT
    made = json.loads(path.read_text()).get("config", {}) if path.exists() else None
    if made is not None and {k: made.get(k) for k in settings} != settings:
        # the probes' codes on disk were made with those settings (ridge only re-solves)
        raise ValueError(f"{folder} holds an SAE-TS fit with other settings; use --out, or the "
                         "same --ts-* settings")
    folder.mkdir(parents=True, exist_ok=True)
    w_dec = steerer.sae.W_dec.detach().double().cpu().numpy()
    chosen, report = {}, {}
    for t, sel in selection.items():
        mine = [it for it in items if scored(t, it.gender)][: cfg.items]
        if not mine:
            raise ValueError(f"no calibration item counts toward {t!r}; raise --ts-items")
        vecs = probes(sel, w_dec, cfg)
        codes = []
        for j in tqdm(range(-1, len(vecs)), desc=f"sae_ts probes ({t})"):
            f = folder / f"probe_{t}_{'none' if j < 0 else j}.npy"
            if not f.exists():
                toks = generate(steerer, sel, None if j < 0 else vecs[j], mine, batch_size)
                made = read_back(steerer, mine, toks)
                atomic_save(f, lambda p, c=made: np.save(p, c))
            codes.append(np.load(f))
        effects = np.stack([(c - codes[0]).mean(0) for c in codes[1:]]).astype(np.float64)
        v, pred = solve(effects, vecs, sel, cfg.ridge)
        chosen[t] = replace(sel, targeted=v.tolist())
        report[t] = {"probes": {"diffmeans": 1, "candidates": len(vecs) - 1 - cfg.random,
                                "random": cfg.random},
                     "items": [it.index for it in mine], "predicted": pred,
                     "vector": [round(float(x), 6) for x in v]}
        log.info("%s: sae_ts predicted target %.4f (diff-means %.4f), off-target rms %.4f "
                 "(diff-means %.4f)", t, pred["sae_ts"]["target"], pred["diffmeans"]["target"],
                 pred["sae_ts"]["off_target_rms"], pred["diffmeans"]["off_target_rms"])
    atomic_write_json(path, {"config": settings | {"ridge": cfg.ridge}, "targets": report})
    return chosen

