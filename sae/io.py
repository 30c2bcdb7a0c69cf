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
import struct
from pathlib import Path

import torch
from sae_lens import SAE, BatchTopKTrainingSAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from torch import nn

from interp.cli import one_line
from interp.store.writer import fingerprint

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
    """An SAE folder's cfg.json; a missing, truncated or foreign one is one line naming it."""
    path = Path(folder) / SAE_CFG_FILENAME
    if not path.exists():
        raise FileNotFoundError(f"no SAE in {folder} (expected {SAE_CFG_FILENAME}); train one "
                                "with `python -m sae.train --layer L`")
    try:
        cfg = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is corrupt or truncated ({exc}); train the SAE again or "
                         "restore the file") from None
    if not isinstance(cfg, dict) or "d_in" not in cfg:
        raise ValueError(f"{path} is not an SAE config (no d_in); pass an SAE folder of "
                         "`python -m sae.train`")
    return cfg


def check_weights(folder: str | Path) -> None:
    """One line naming `sae_weights.safetensors` when it is missing, truncated or corrupt (its
    header must parse and its tensors must end exactly at the end of the file)."""
    path = Path(folder) / SAE_WEIGHTS_FILENAME
    if not path.exists():
        raise FileNotFoundError(f"no {SAE_WEIGHTS_FILENAME} in {folder}; train the SAE again")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n)) if 0 < n <= size - 8 else None
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        ok = 8 + n + max(ends, default=0) == size
    except (struct.error, ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ValueError(f"{path} is corrupt or truncated ({size} bytes); train the SAE again "
                         "or restore the file")


def check_sae(cfg: dict, backbone=None, hook: str | None = None) -> None:
    """Raise a one-line ValueError when the SAE was made for another model, hook or width."""
    meta = cfg.get("metadata", {})
    where = f"SAE for {meta.get('model_name', '?')} {meta.get('hook_name', '?')}"
    if hook is not None and meta.get("hook_name") not in (None, hook):
        raise ValueError(f"{where} cannot be used at {hook}; {which_sae(hook)}")
    if backbone is None:
        return
    if hook is not None and hook not in backbone.hook_points():
        raise ValueError(f"{backbone.name} has no hook point {hook!r} "
                         f"(e.g. blocks.{backbone.n_layers // 2}.hook_resid_post)")
    width = backbone.d_model
    hint = f"; it was trained with --model {meta['model']}" if meta.get("model") else ""
    if cfg["d_in"] != width:
        raise ValueError(f"{where} has d_in {cfg['d_in']}, but {backbone.name}'s "
                         f"{hook or meta.get('hook_name') or 'hook'} is {width} wide{hint}")
    name = getattr(backbone, "name", None)
    if meta.get("model_name") not in (None, name):
        raise ValueError(f"{where} was trained on model {meta['model_name']!r}, not "
                         f"{name!r}{hint}")
    digest = meta.get("model_digest")
    if digest is not None and digest != model_digest(backbone.model):
        raise ValueError(f"{where} was trained on other weights of {name} (digest {digest}, "
                         f"this model {model_digest(backbone.model)}); retrain it or load the "
                         "model it was trained on")


def which_sae(hook: str) -> str:
    """The hint that names the SAE a hook needs (SAEs live in runs/<model>/sae/layer_L)."""
    layer = hook.split(".")[1] if hook.startswith("blocks.") else "L"
    kind = hook.rsplit(".", 1)[-1].removeprefix("hook_")
    extra = "" if kind == "resid_post" else f" --hook {kind}"
    return (f"pass an SAE trained there, e.g. --sae runs/tinycosy/sae/layer_{layer} (train it "
            f"with `python -m sae.train --layer {layer}{extra}`)")


def load_sae(folder: str | Path, backbone=None, hook: str | None = None,
             device: str | torch.device = "cpu") -> SAE:
    """Load an SAE with `sae_lens.SAE.load_from_disk`, first checking that it fits `backbone`
    (width, model name, weights digest) and `hook` when they are given, and that its files are
    whole (a truncated one is one line naming it, not a SafetensorError trace)."""
    cfg = read_cfg(folder)
    check_sae(cfg, backbone, hook)
    check_weights(folder)
    try:
        return SAE.load_from_disk(str(folder), device=str(device))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{folder} is not a loadable SAELens SAE ({one_line(exc)[:160]})"
                         ) from None


def weights_fingerprint(folder: str | Path) -> str:
    """Digest of the SAE's weights file: what a folder of outputs made with it records, so an
    SAE retrained or replaced at the same path is told apart."""
    return fingerprint(Path(folder) / SAE_WEIGHTS_FILENAME)


def read_metrics(folder: str | Path) -> dict:
    return json.loads((Path(folder) / METRICS).read_text())
