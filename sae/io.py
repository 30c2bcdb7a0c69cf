"""SAE files: the SAELens inference format, the model identity it records, and checked loading.

An SAE folder holds SAELens's `cfg.json` + `sae_weights.safetensors` (a JumpReLU SAE that takes
*raw* activations: the norm scaling used in training is folded into the weights and the
threshold) and our `metrics.json`. `cfg.json`'s metadata names the model (`model_name`,
`model_fingerprint` of its weights file, `model_digest` of its loaded weights), the hook
(`hook_name`), the layer, the trained modality and the folded `norm_scale`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path

import torch
from sae_lens import SAE, BatchTopKTrainingSAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from torch import nn

log = logging.getLogger(__name__)

METRICS = "metrics.json"


@torch.no_grad()
def model_digest(model: nn.Module, per_tensor: int = 1024) -> str:
    """A cheap identity of loaded weights: sha256 over every tensor's name, shape and up to
    `per_tensor` evenly spaced values (float32). Two differently trained models differ in it;
    the same weights give the same digest on any device."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        flat = t.detach().reshape(-1)
        idx = torch.linspace(0, max(flat.numel() - 1, 0), min(per_tensor, flat.numel()))
        vals = flat[idx.long().to(flat.device)].float().cpu().numpy()
        h.update(f"{name}:{tuple(t.shape)}".encode())
        h.update(vals.tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def fold_norm_scale(sae: BatchTopKTrainingSAE, scale: float) -> None:
    """Fold the input scaling x → scale·x into the weights so the SAE takes raw activations.

    The BatchTopK threshold lives in units of hidden_pre·‖W_dec‖ when
    `rescale_acts_by_decoder_norm` is on, and the fold divides W_dec by `scale`, so the
    threshold must be divided too. SAELens does this since its fix of #763; older versions did
    not (the DESIGN pitfall: L0 after loading far from k), so it is checked and done here."""
    before = float(sae.topk_threshold)
    sae.fold_activation_norm_scaling_factor(scale)
    if (sae.cfg.rescale_acts_by_decoder_norm and scale != 1.0 and before != 0.0
            and math.isclose(float(sae.topk_threshold), before)):
        log.warning("this SAELens keeps the BatchTopK threshold unscaled when folding the "
                    "norm scale; dividing it by %.4g here", scale)
        sae.topk_threshold /= scale


def save_inference(sae: BatchTopKTrainingSAE, scale: float, out: Path) -> None:
    """Fold `scale` into a copy of the training SAE and write the SAELens inference files into
    `out`, each by an atomic rename (weights first, then cfg.json)."""
    folded = copy.deepcopy(sae)
    fold_norm_scale(folded, scale)
    folded.cfg.metadata.norm_scale = scale
    tmp = out / ".inference.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    folded.save_inference_model(tmp)
    for name in (SAE_WEIGHTS_FILENAME, SAE_CFG_FILENAME):
        os.replace(tmp / name, out / name)
    shutil.rmtree(tmp, ignore_errors=True)


def read_cfg(folder: str | Path) -> dict:
    path = Path(folder) / SAE_CFG_FILENAME
    if not path.exists():
        raise FileNotFoundError(f"no SAE in {folder} (expected {SAE_CFG_FILENAME}); train one "
                                "with `python -m sae.train --layer L`")
    return json.loads(path.read_text())


def check_sae(cfg: dict, backbone=None, hook: str | None = None) -> None:
    """Raise a one-line ValueError when the SAE was made for another model, hook or width."""
    meta = cfg.get("metadata", {})
    where = f"SAE for {meta.get('model_name', '?')} {meta.get('hook_name', '?')}"
    if hook is not None and meta.get("hook_name") not in (None, hook):
        raise ValueError(f"{where} cannot be used at {hook}")
    if backbone is None:
        return
    if hook is not None and hook not in backbone.hook_points():
        raise ValueError(f"{backbone.name} has no hook point {hook!r} "
                         f"(e.g. blocks.{backbone.n_layers // 2}.hook_resid_post)")
    width = backbone.d_model
    if cfg["d_in"] != width:
        raise ValueError(f"{where} has d_in {cfg['d_in']}, but {backbone.name}'s "
                         f"{hook or meta.get('hook_name') or 'hook'} is {width} wide")
    name = getattr(backbone, "name", None)
    if meta.get("model_name") not in (None, name):
        raise ValueError(f"{where} was trained on model {meta['model_name']!r}, not {name!r}")
    digest = meta.get("model_digest")
    if digest is not None and digest != model_digest(backbone.model):
        raise ValueError(f"{where} was trained on other weights of {name} (digest {digest}, "
                         f"this model {model_digest(backbone.model)}); retrain it or load the "
                         "model it was trained on")


def load_sae(folder: str | Path, backbone=None, hook: str | None = None,
             device: str | torch.device = "cpu") -> SAE:
    """Load an SAE with `sae_lens.SAE.load_from_disk`, first checking that it fits `backbone`
    (width, model name, weights digest) and `hook` when they are given."""
    cfg = read_cfg(folder)
    check_sae(cfg, backbone, hook)
    return SAE.load_from_disk(str(folder), device=str(device))


def read_metrics(folder: str | Path) -> dict:
    return json.loads((Path(folder) / METRICS).read_text())
