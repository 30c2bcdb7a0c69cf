"""How good an SAE is: reconstruction (explained variance, L0, dead and dense latents) on held-out
positions, and the next-speech-token loss with the SAE spliced into the model.

Explained variance is SAELens's: 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² over a set of positions (x̄ the mean
of that set). Loss recovered is (zero − spliced) / (zero − clean): 1 when the reconstruction
loses nothing downstream, 0 when it is as bad as zeroing the activation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from interp.hooks import Intervention, all_positions, intervene, modality_positions
from interp.models.data import Example
from interp.models.loss import batch_loss
from interp.store import MODALITY_CODES

DENSE_FRAC = 0.1  # a latent active on more than this fraction of positions counts as dense


def explained_variance(x: Tensor, x_hat: Tensor) -> float | None:
    """Over the rows of x (n, d) and its reconstruction x_hat (n, d); None for < 2 rows."""
    if len(x) < 2:
        return None
    err = (x - x_hat).pow(2).sum()
    var = (x - x.mean(0)).pow(2).sum()
    return float(1 - err / var)


@torch.no_grad()
def encode_decode(sae, x: Tensor, chunk: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """For x (n, d): (reconstruction (n, d), active latents per position (n,), firing count per latent (d_sae,)),
    in chunks of `chunk` positions (BatchTopK's choice depends on the batch, so a training SAE
    should be given its training batch size)."""
    dev = next(sae.parameters()).device
    recon, l0 = [], []
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    for i in range(0, len(x), chunk):
        acts = sae.encode(x[i : i + chunk].to(dev))
        recon.append(sae.decode(acts).float().cpu())
        active = (acts > 0).cpu()
        l0.append(active.sum(-1))
        fires += active.sum(0)
    return torch.cat(recon), torch.cat(l0).float(), fires


def reconstruction_metrics(sae, x: Tensor, codes: np.ndarray,
                           chunk: int = 4096) -> dict:
    """Explained variance and L0 overall and on text and speech positions; dead fraction
    (latents never active here) and dense fraction (active on > DENSE_FRAC of positions)."""
    x_hat, l0, fires = encode_decode(sae, x, chunk)
    out: dict = {"positions": len(x), "explained_variance": explained_variance(x, x_hat),
                 "l0": float(l0.mean())}
    for name in ("text", "speech"):
        mask = torch.from_numpy(codes == MODALITY_CODES[name])
        out[f"explained_variance_{name}"] = explained_variance(x[mask], x_hat[mask])
        out[f"l0_{name}"] = float(l0[mask].mean()) if mask.any() else None
        out[f"positions_{name}"] = int(mask.sum())
    frac = fires.float() / max(len(x), 1)
    out["dead_frac"] = float((fires == 0).float().mean())
    out["dense_frac"] = float((frac > DENSE_FRAC).float().mean())
    return out


@torch.no_grad()
def prefix_explained_variance(sae, x: Tensor, widths: tuple[int, ...],
                              chunk: int = 4096) -> dict[str, float | None]:
    """Explained variance of x (n, d) decoded from each prefix of the dictionary alone (latents
    ≥ width zeroed after encoding): what a Matryoshka SAE trains every prefix to do. Keys are
    the widths, as strings (JSON)."""
    dev = next(sae.parameters()).device
    parts: dict[int, list[Tensor]] = {w: [] for w in widths}
    for i in range(0, len(x), chunk):
        acts = sae.encode(x[i : i + chunk].to(dev))
        for w in widths:
            cut = acts.clone()
            cut[:, w:] = 0
            parts[w].append(sae.decode(cut).float().cpu())
    return {str(w): explained_variance(x, torch.cat(p)) if p else None
            for w, p in parts.items()}


def splice_fn(sae) -> Callable[[Tensor], Tensor]:
    """x → SAE reconstruction of x. The saved SAE takes raw activations (the norm scale is
    folded into its weights), so no scaling happens here."""
    dev = next(sae.parameters()).device

    def fn(x: Tensor) -> Tensor:
        return sae.decode(sae.encode(x.to(dev))).to(x.device, x.dtype)

    return fn


@torch.no_grad()
def spliced_loss(model, sae, hook: str, examples: list[Example],
                 modality: str | None = None) -> dict:
    """Mean next-speech-token loss (target tokens and eos) clean, with the SAE reconstruction
    spliced in at `hook`, and with the activation zeroed there; positions of `modality` only
    when the SAE was trained on one."""
    model.eval()
    totals = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    n = 0
    fns = {"spliced": splice_fn(sae), "zero": torch.zeros_like}
    for ex in examples:
        mods = model.modality(len(ex.text_ids), len(ex.prompt), len(ex.target))
        where = all_positions() if modality is None else modality_positions(mods, keep=modality)
        w = len(ex.target) + 1
        totals["clean"] += batch_loss(model, [ex]).item() * w
        for name, fn in fns.items():
            with intervene(model, Intervention(hook, fn, where)):
                totals[name] += batch_loss(model, [ex]).item() * w
        n += w
    out = {f"loss_{k}": v / max(n, 1) for k, v in totals.items()}
    gap = out["loss_zero"] - out["loss_clean"]
    out["loss_recovered"] = (out["loss_zero"] - out["loss_spliced"]) / gap if gap > 0 else None
    out["examples"], out["predicted_tokens"] = len(examples), n
    return out
