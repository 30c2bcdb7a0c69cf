"""Steering methods, composed: what the model is *asked* × what is *edited* inside it.

    asked   nothing, or the target the model's own way (TTS: a `[laughter]` tag, a rate
            instruction, a prompt voice of the target gender; an editor: the pair's instruction)
    edited  nothing, the target's SAE latents (`sae`), their decoder direction, the difference
            of means, or the controls: density-matched random latents, a random direction of
            the same norm; or the latents chosen by their measured output effect
            (`sae_effect`, `steering.calibrate`), or the vector solved to move the target's
            latents in what the model says and the others least (`sae_ts`, `steering.targeted`),
            or many latents shifted both ways toward the target group's mean codes
            (`sae_shift`: the other group's latents lowered, never below 0)

An experiment names its methods its own way (`steering.run`: none, prompt, sae, …;
`steering.edit_compare`: none, instruct, steer, instruct+steer, …); `edit_interventions` is the
one place an edit becomes hooks, for experiments and for the notebook API alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.hooks.intervene import Intervention, PositionMask
from steering.select import TargetSelection
from steering.steer import LatentEdit, direction_intervention, sae_intervention

EDITS = ("sae", "decoder", "diffmeans", "random_latents", "random_direction",  # in run order
         "sae_effect", "sae_ts", "sae_shift")
LATENT_EDITS = ("sae", "random_latents", "sae_effect", "sae_shift")
DIRECTION_EDITS = ("decoder", "diffmeans", "random_direction", "sae_ts")


@dataclass(frozen=True)
class Method:
    """A named way to push generation toward a target."""

    name: str
    ask: bool = False
    """the model is asked for the target its own way (prompt, instruction)"""
    edit: str = ""
    """what is edited at the hook: '' (nothing) or one of EDITS"""
    ablate: bool = False
    """the edited latents are set to 0 instead of pushed up (strength-free; latent edits only)"""
    keep_norm: bool = False
    """each edited position is rescaled to its residual norm before the edit (norm-preserving
    steering: the edit turns the residual rather than growing it)"""
    clamp: bool = False
    """the difference of means clamped rather than added: each position's component along it
    is raised to at least the negative group's mean + strength·‖Δμ‖ (strength 1: the positive
    group's mean), never lowered"""

    def __post_init__(self) -> None:
        if self.edit and self.edit not in EDITS:
            raise ValueError(f"method {self.name!r}: unknown edit {self.edit!r}; use one of "
                             f"{EDITS}")
        if self.clamp and self.edit != "diffmeans":
            raise ValueError(f"method {self.name!r}: only the difference of means is clamped")
        if self.ablate and self.edit not in LATENT_EDITS:
            raise ValueError(f"method {self.name!r}: only latents can be ablated, not "
                             f"{self.edit or 'nothing'}")

    @property
    def strength_free(self) -> bool:
        """Nothing edited, or an ablation: no strength to vary."""
        return not self.edit or self.ablate


def edit_interventions(sae, hook: str, sel: TargetSelection, edit: str, strength: float,
                       mask: PositionMask, mode: str = "clamp", keep_norm: bool = False,
                       clamp: bool = False) -> list[Intervention]:
    """The hooks of one edit toward `sel`'s target at `strength` (in units of ‖Δμ‖): SAE latents
    edited by `mode` (`set` at strength 0 ablates them), or a direction added to the residual
    (`clamp`: the difference of means' component raised to a level instead, Method.clamp);
    `keep_norm`: each edited position then keeps its residual norm."""
    if not edit:
        return []
    if edit in LATENT_EDITS:
        lat, amt = {"sae": (sel.latents, sel.amounts),
                    "random_latents": (sel.random_latents, sel.random_amounts),
                    "sae_effect": (sel.effect_latents, sel.effect_amounts),
                    "sae_shift": (sel.shift_latents, sel.shift_amounts)}[edit]
        if not lat:
            raise ValueError(f"{sel.target}: no latents for {edit!r}" + (
                "; they are chosen by steering.calibrate (steering.run and steering.frontier "
                "run it when --methods names sae_effect)" if edit == "sae_effect" else
                "; this selection was saved before sae_shift: select again (a new --out)"
                if edit == "sae_shift" else ""))
        # the two-sided edit always shifts (its amounts have both signs); the others use `mode`
        edit_mode = "shift" if edit == "sae_shift" else mode
        return [sae_intervention(sae, hook, LatentEdit(tuple(lat), tuple(amt), edit_mode),
                                 strength, mask, keep_norm)]
    if edit not in DIRECTION_EDITS:
        raise ValueError(f"unknown edit {edit!r}; use one of {EDITS}")
    vec = {"decoder": sel.decoder, "diffmeans": sel.diffmeans,
           "random_direction": sel.random_direction, "sae_ts": sel.targeted}[edit]
    if not vec:
        raise ValueError(f"{sel.target}: no vector for {edit!r}; it is fitted by "
                         "steering.targeted (steering.run and steering.frontier fit it when "
                         "--methods names sae_ts)")
    if clamp:
        if sel.floor is None:
            raise ValueError(f"{sel.target}: this selection was saved before diffmeans_clamp; "
                             "select again (a new --out)")
        return [direction_intervention(hook, torch.tensor(vec, dtype=torch.float32), mask,
                                       keep_norm, clamp_to=sel.floor + strength * sel.unit)]
    return [direction_intervention(hook, strength * torch.tensor(vec, dtype=torch.float32),
                                   mask, keep_norm)]
