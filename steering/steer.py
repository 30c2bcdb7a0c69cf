"""Edits of the residual stream during generation: SAE-latent edits and additive directions.

An SAE edit encodes the residual x, changes chosen latents z → z', and returns
x + (z' − z) W_dec, which is exactly decode(z') + (x − decode(z)): the SAE's error term is kept,
so nothing but the chosen latents changes. Modes (strength s, per-latent amount c_i):

    add    z_i ← z_i + s·c_i          clamp  z_i ← max(z_i, s·c_i)
    scale  z_i ← z_i · (1 + s)        set    z_i ← s·c_i   (s = 0 ablates the latents)
    shift  z_i ← max(0, z_i + s·c_i)  (c_i of either sign: a latent is lowered at most to 0,
                                       so only what a position holds of it is taken away)

`add`, `clamp`, `scale` and `shift` at s = 0 leave x bit-for-bit unchanged. A direction edit adds a fixed
vector to the raw residual (the decoder-direction, difference-in-means and random baselines).

    ivs = [sae_intervention(sae, "blocks.12.hook_resid_post", LatentEdit((5, 9), (1.0, 2.0)), 4.0)]
    tokens = generate_steered(backbone, backbone.request(text, voice), ivs, seed=0)

Batched: `generate_steered_batch(backbone, reqs, [ivs_0, ivs_1, …], seeds)` gives every row what
`generate_steered` gives it alone; rows that share an SAE edit at different strengths, or add
different vectors, are edited in one call (a per-row strength tensor).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

import torch

from interp.hooks.intervene import (
    AddVector,
    ClampProjection,
    Intervention,
    KeepNorm,
    PositionMask,
    all_positions,
    from_position,
    intervene,
    modality_positions,
)
from interp.models.backbone import Request
from interp.models.generate import SamplingConfig

MODES = ("add", "clamp", "scale", "set", "shift")
POSITIONS = ("speech", "generated", "window", "boundary", "all")


@dataclass(frozen=True)
class LatentEdit:
    """Which SAE latents to edit, by how much per unit of strength, and how."""

    latents: tuple[int, ...]
    amounts: tuple[float, ...]
    """c_i: activation units per unit of strength (ignored by `scale`)"""
    mode: str = "clamp"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown edit mode {self.mode!r}; use one of {MODES}")
        if len(self.latents) != len(self.amounts):
            raise ValueError("LatentEdit needs one amount per latent")


def _edited(zi: torch.Tensor, edit: LatentEdit, strength: float | torch.Tensor
            ) -> torch.Tensor:
    """New values of the chosen latents from their current values zi (..., k). A tensor
    `strength` (B,) is one strength per row of zi (B, ..., k): row i is what strength[i] alone
    gives, bit for bit (the products are formed in the same precision as with a float)."""
    amounts = torch.tensor(edit.amounts, dtype=zi.dtype, device=zi.device)
    if isinstance(strength, torch.Tensor):
        s = strength.to(zi.device, torch.float64).reshape(-1, *[1] * (zi.dim() - 1))
        c, factor = amounts * s.to(zi.dtype), (1 + s).to(zi.dtype)  # as a float scalar is cast
    else:
        c, factor = amounts * strength, 1 + strength
    return {"add": lambda: zi + c, "clamp": lambda: torch.maximum(zi, c),
            "scale": lambda: zi * factor, "set": lambda: c.expand_as(zi),
            "shift": lambda: torch.relu(zi + c)}[edit.mode]()


def edit_codes(z: torch.Tensor, edit: LatentEdit, strength: float) -> torch.Tensor:
    """The edited latent codes z' (..., d_sae), a copy: only `edit.latents` differ from z."""
    idx = list(edit.latents)
    out = z.clone()
    out[..., idx] = _edited(z[..., idx], edit, strength)
    return out


def _subset_encoder(sae, idx: list[int]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A JumpReLU SAE's codes of the chosen latents only, exactly as `sae.encode(x)[..., idx]`
    (each latent's code depends on x alone); None for other SAE kinds."""
    from sae_lens import JumpReLUSAE

    if type(sae).encode is not JumpReLUSAE.encode or (
            getattr(sae.cfg, "normalize_activations", "none") != "none"):
        return None
    w, b = sae.W_enc[:, idx].detach(), sae.b_enc[idx].detach()
    thr, shift = sae.threshold[idx].detach(), (sae.b_dec * sae.cfg.apply_b_dec_to_input).detach()

    def encode(x: torch.Tensor) -> torch.Tensor:
        pre = (x.to(w.dtype) - shift) @ w + b  # (..., k)
        return torch.relu(pre) * (pre > thr).to(pre.dtype)

    return encode


class LatentEditor:
    """x → x + (z' − z)·W_dec over the chosen latents: decode(z') with x's SAE error term kept.
    Only the chosen latents are encoded (exact for JumpReLU SAEs), so a step costs O(k·d).

    `strength` is one float for every row, or one per row of the (B, T, D) activations it is
    called on (a per-row strength, for batched generation): row i is edited as at strength[i]
    alone. Editors of one SAE and one edit stack into such a per-row editor (`stack`)."""

    def __init__(self, sae, edit: LatentEdit, strength: float | Sequence[float] | torch.Tensor):
        self.edit, self.sae = edit, sae
        s = torch.as_tensor(strength, dtype=torch.float64)
        self.strength: float | torch.Tensor = float(s) if s.dim() == 0 else s.reshape(-1)
        self._bind(sae)

    def _bind(self, sae) -> None:
        idx = list(self.edit.latents)
        self.encode = _subset_encoder(sae, idx) or (lambda x: sae.encode(x)[..., idx])
        self.w_dec = sae.W_dec[idx].detach()  # (k, d)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.edit.latents:
            return x
        if self.w_dec.device != x.device:  # an SAE loaded on the CPU edits a model on CUDA
            self.sae = self.sae.to(x.device)
            self._bind(self.sae)
        if isinstance(self.strength, torch.Tensor) and len(self.strength) != x.shape[0]:
            raise ValueError(f"{len(self.strength)} per-row strengths for {x.shape[0]} rows")
        zi = self.encode(x.float())
        dz = _edited(zi, self.edit, self.strength) - zi  # (..., k)
        if not bool(dz.any()):
            return x
        return x + (dz @ self.w_dec).to(x.dtype)

    @property
    def stack_key(self) -> Hashable | None:
        """Editors with equal keys (the same SAE object and edit, one float strength each)
        stack into one per-row editor."""
        if isinstance(self.strength, torch.Tensor):
            return None
        return ("latent_edit", id(self.sae), self.edit)

    def stack(self, editors: Sequence[LatentEditor]) -> LatentEditor:
        """One editor over the editors' rows stacked in order, with a per-row strength."""
        out = copy.copy(self)  # the same encoder and decoder rows
        out.strength = torch.tensor([float(e.strength) for e in editors], dtype=torch.float64)
        return out


def edit_residual(sae, x: torch.Tensor, edit: LatentEdit, strength: float) -> torch.Tensor:
    """x + (z' − z)·W_dec for the chosen latents: decode(z') with x's SAE error term kept."""
    return LatentEditor(sae, edit, strength)(x)


def position_mask(kind: str, modality: list[str], start: int = 0, steps: int = 0
                  ) -> PositionMask:
    """`speech`: prompt speech and generated tokens; `generated`: generated tokens only;
    `window`: generated steps start .. start+steps-1 (e.g. a laughter burst mid-sentence);
    `boundary`: the same, from a start found at a word boundary (`steering.experiment`'s
    `Steerer.boundary_step`: where a tag would sit)."""
    if kind == "speech":
        return modality_positions(modality, keep="speech", beyond="speech")
    if kind == "generated":
        return from_position(len(modality))
    if kind in ("window", "boundary"):
        first, last = len(modality) + start, len(modality) + start + max(steps, 1)
        return lambda pos: (pos >= first) & (pos < last)
    if kind == "all":
        return all_positions()
    raise ValueError(f"unknown positions {kind!r}; use one of {POSITIONS}")


def sae_intervention(sae, hook: str, edit: LatentEdit, strength: float,
                     positions: PositionMask | None = None, keep_norm: bool = False
                     ) -> Intervention:
    """Edit SAE latents at `hook`; `keep_norm`: each position keeps its residual norm."""
    fn = LatentEditor(sae, edit, strength)
    return Intervention(hook, KeepNorm(fn) if keep_norm else fn, positions or all_positions())


def direction_intervention(hook: str, vector: torch.Tensor,
                           positions: PositionMask | None = None, keep_norm: bool = False,
                           clamp_to: float | None = None) -> Intervention:
    """Add `vector` to the raw residual at `hook` (`clamp_to`: instead raise each position's
    component along it to at least that level); `keep_norm`: then rescale each position to its
    norm before the edit."""
    fn: Callable[[torch.Tensor], torch.Tensor] = AddVector(vector)
    if clamp_to is not None:
        fn = ClampProjection(vector / vector.norm().clamp_min(1e-12), clamp_to)
    return Intervention(hook, KeepNorm(fn) if keep_norm else fn, positions or all_positions())


def generate_steered(backbone, req: Request, ivs: list[Intervention], seed: int,
                     sampling: SamplingConfig | None = None) -> list[int]:
    """Speech tokens of `req` (`Backbone.request`) with the interventions applied (none: plain
    generation)."""
    cfg = replace(sampling or SamplingConfig(), seed=seed)
    with intervene(backbone.model, ivs):
        return backbone.generate(req.text_ids, req.prompt, req.n_text, cfg)


def generate_steered_batch(backbone, reqs: Sequence[Request],
                           ivs: Sequence[Sequence[Intervention]], seeds: Sequence[int],
                           sampling: SamplingConfig | Sequence[SamplingConfig] | None = None
                           ) -> list[list[int]]:
    """What `generate_steered(backbone, reqs[i], ivs[i], seeds[i], sampling)` gives for every i,
    made in one batch where the backbone can (`Backbone.generate_batch`); `sampling` is one
    config for all rows or one per row (its seed replaced by the row's)."""
    n = len(reqs)
    base = (list(sampling) if isinstance(sampling, list | tuple)
            else [sampling] * n)
    if not len(base) == len(ivs) == len(seeds) == n:
        raise ValueError(f"{n} requests but {len(ivs)} intervention lists, {len(seeds)} seeds "
                         f"and {len(base)} sampling configs; give one of each per request")
    cfgs = [replace(c or SamplingConfig(), seed=s) for c, s in zip(base, seeds, strict=True)]
    if not hasattr(backbone, "generate_batch"):  # a backbone of its own making: one by one
        return [generate_steered(backbone, r, list(iv), s, c)
                for r, iv, s, c in zip(reqs, ivs, seeds, cfgs, strict=True)]
    return backbone.generate_batch(list(reqs), cfgs, [list(iv) for iv in ivs])
