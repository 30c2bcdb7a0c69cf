"""The end of a training run: save the inference SAE, check it against the training SAE, and
write `metrics.json`.

The check is the DESIGN pitfall: BatchTopK is saved as a JumpReLU SAE whose threshold is the
training EMA of the smallest kept activation, with the norm scale folded into the weights. If
that conversion were wrong, L0 and explained variance of the loaded SAE would differ from the
training SAE's (BatchTopK, in training-size batches) on the same positions; both are recorded
under `pitfall_check`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from sae_lens import SAE, BatchTopKTrainingSAE

from interp.atomic import atomic_write_json
from interp.store import modality_mask
from sae.config import SAETrainConfig
from sae.io import METRICS, save_inference
from sae.metrics import (
    encode_decode,
    explained_variance,
    prefix_explained_variance,
    reconstruction_metrics,
    spliced_loss,
)

log = logging.getLogger(__name__)

# A broken conversion shows as L0 far from the training L0 and a drop in explained variance; a
# fixed threshold may explain *more* than per-batch top-k at the same L0, which is fine.
L0_TOLERANCE, EV_TOLERANCE = 0.25, 0.02  # relative L0, absolute explained-variance drop


def pitfall_check(train_sae: BatchTopKTrainingSAE, loaded: SAE, x: torch.Tensor,
                  scale: float, batch_size: int) -> dict:
    """L0 and explained variance of the training SAE (BatchTopK on scaled inputs, in training
    batches) against the loaded inference SAE (JumpReLU on raw inputs), on the same positions."""
    train_sae.eval()
    x_hat_t, l0_t, _ = encode_decode(train_sae, x * scale, batch_size)
    x_hat_i, l0_i, _ = encode_decode(loaded, x, batch_size)
    out = {"training_l0": float(l0_t.mean()), "inference_l0": float(l0_i.mean()),
           "training_explained_variance": explained_variance(x * scale, x_hat_t),
           "inference_explained_variance": explained_variance(x, x_hat_i),
           "threshold": float(train_sae.topk_threshold), "positions": len(x)}
    ev_t, ev_i = out["training_explained_variance"], out["inference_explained_variance"]
    out["ok"] = bool(abs(out["inference_l0"] / max(out["training_l0"], 1e-9) - 1) < L0_TOLERANCE
                     and ev_t is not None and ev_i is not None
                     and ev_i > ev_t - EV_TOLERANCE)
    if not out["ok"]:
        log.warning("the inference SAE differs from the training SAE: L0 %.1f vs %.1f, "
                    "explained variance %s vs %s (an unconverged threshold after few steps, or "
                    "a broken BatchTopK → JumpReLU conversion)", out["inference_l0"],
                    out["training_l0"], ev_i, ev_t)
    return out


def heldout_examples(cfg: SAETrainConfig, backbone) -> list:
    """heldout_sentences examples for the spliced loss, in the backbone's own input layout; []
    (with a warning) without a corpus or tokens."""
    if cfg.eval_examples <= 0:
        return []
    try:
        triples = backbone.corpus_examples(Path(cfg.corpus), Path(cfg.speech_tokens),
                                           ["heldout_sentences"], cfg.eval_examples)
    except (FileNotFoundError, ValueError) as exc:
        log.warning("no held-out loss: %s", exc)
        return []
    return [ex for ex, _, _ in triples]


def finish(cfg: SAETrainConfig, sae: BatchTopKTrainingSAE, scale: float, x: torch.Tensor,
           codes: np.ndarray, hook: str, backbone, extra: dict) -> dict:
    """Save the inference SAE into `cfg.out_dir`, load it back with SAELens, measure it, and
    write metrics.json (last, atomically: its presence means the run is done). An SAE trained
    on one modality is measured on that modality's positions only; a Matryoshka SAE also on
    each of its prefixes alone (`prefix_explained_variance`)."""
    out = cfg.out_dir
    save_inference(sae, scale, out)
    dev = next(sae.parameters()).device
    loaded = SAE.load_from_disk(str(out), device=str(dev))
    if cfg.modality_filter is not None:  # an SAE of one modality is measured on its positions
        keep = modality_mask(codes, cfg.modality_filter)
        x, codes = x[torch.from_numpy(keep)], codes[keep]
    metrics: dict = {"layer": cfg.layer, "hook": hook, "modality": cfg.modality,
                     "architecture": cfg.architecture, "d_in": loaded.cfg.d_in,
                     "d_sae": cfg.d_sae, "k": cfg.k, "norm_scale": scale,
                     **reconstruction_metrics(loaded, x, codes)}
    if cfg.architecture == "matryoshka":
        metrics["matryoshka_widths"] = list(cfg.widths)
        metrics["prefix_explained_variance"] = prefix_explained_variance(loaded, x, cfg.widths)
    metrics["pitfall_check"] = pitfall_check(sae, loaded, x, scale, cfg.batch_size)
    examples = heldout_examples(cfg, backbone) if backbone is not None else []
    if examples:
        metrics.update(spliced_loss(backbone.model, loaded, hook, examples, cfg.modality_filter))
    else:
        metrics.update({"loss_clean": None, "loss_spliced": None, "loss_zero": None,
                        "loss_recovered": None, "examples": 0})
    metrics.update(extra)
    atomic_write_json(out / METRICS, metrics)
    return metrics


def summary(m: dict, out: Path) -> str:
    """A one-screen summary of metrics.json."""
    def f(v, fmt=".3f"):
        return "—" if v is None else format(v, fmt)

    p = m["pitfall_check"]
    return "\n".join([
        f"SAE {m['hook']} ({m['modality']} positions): {m.get('architecture', 'batchtopk')}, "
        f"d_sae {m['d_sae']}, k {m['k']}, {m['training']['steps']} steps → {out}",
        f"  explained variance {f(m['explained_variance'])} (text "
        f"{f(m['explained_variance_text'])}, speech {f(m['explained_variance_speech'])}) "
        f"on {m['positions']:,} held-out positions",
        *(["  explained variance of each prefix alone: " + ", ".join(
            f"{w} latents {f(v)}" for w, v in m["prefix_explained_variance"].items())]
          if m.get("prefix_explained_variance") else []),
        f"  L0 {f(m['l0'], '.1f')}; dead {f(m['dead_frac'])}, dense {f(m['dense_frac'])}",
        f"  next-speech-token loss: clean {f(m['loss_clean'])}, spliced {f(m['loss_spliced'])}, "
        f"zero {f(m['loss_zero'])} → loss recovered {f(m['loss_recovered'])}",
        f"  loaded vs training SAE: L0 {p['inference_l0']:.1f} vs {p['training_l0']:.1f}, EV "
        f"{f(p['inference_explained_variance'])} vs {f(p['training_explained_variance'])} "
        f"({'ok' if p['ok'] else 'MISMATCH'})"])
