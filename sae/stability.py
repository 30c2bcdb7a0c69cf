"""Seed stability: does a second SAE, trained the same way from another seed, find the same
latents?

A latent counts as reproduced when some live latent of the other SAE has a decoder direction
with cosine above `threshold` (0.7) to its own. This is the *max-cosine* match, not a one-to-one
(Hungarian) assignment: two latents of one SAE may both be reproduced by the same latent of the
other. It asks whether a direction recurs, is cheap at any width (a Hungarian assignment of
16k × 16k latents is not), and only overstates stability when one SAE splits what the other
keeps whole, which the absorption metric (`sae.planted`) shows separately. The cosine is
signed: a latent's activations are non-negative, so an opposite direction is another feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def max_cosines(a: Tensor, b: Tensor, chunk: int = 4096) -> Tensor:
    """For each row of a (n, d): its largest cosine with a row of b (m, d); (n,)."""
    a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    if not len(b):
        return torch.full((len(a),), -1.0)
    return torch.cat([(a[i : i + chunk] @ b.T).max(1).values for i in range(0, len(a), chunk)]
                     ) if len(a) else torch.zeros(0)


def decoder_stability(w_dec: Tensor, other_w_dec: Tensor, live: Tensor | None = None,
                      other_live: Tensor | None = None, threshold: float = 0.7) -> dict:
    """Share of the live latents of one SAE (decoder rows `w_dec`, (d_sae, d_in); `live` a bool
    mask, default all) whose direction has a cosine > `threshold` with a live latent of the
    other (`other_w_dec`, `other_live`); with the mean of those best cosines."""
    a = w_dec if live is None else w_dec[live]
    b = other_w_dec if other_live is None else other_w_dec[other_live]
    best = max_cosines(a, b)
    return {"share": round(float((best > threshold).float().mean()), 4) if len(best) else None,
            "mean_max_cos": round(float(best.mean()), 4) if len(best) else None,
            "threshold": threshold, "latents": len(best), "other_latents": len(b),
            "match": "max-cosine"}
