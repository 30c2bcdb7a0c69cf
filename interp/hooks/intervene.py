"""Replace an activation with `f(activation)` at chosen positions, for a pass or a generation.

Positions are absolute: each hook counts the positions it has seen since the context opened, so
one prefill followed by one-token KV-cached steps sees positions 0..T-1, then T, T+1, … . An edit
made at step t lives on in the cached keys and values of step t, exactly as in a full recompute
where the edit is applied at every position — nothing is recomputed or lost at step t+1.
Open one context per sequence (or per batch of aligned sequences).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from interp.hooks.points import decoder_layers, first, parse_hook, replace_first

PositionMask = Callable[[torch.Tensor], torch.Tensor]  # (T,) absolute positions → (T,) bool


def all_positions() -> PositionMask:
    return lambda pos: torch.ones_like(pos, dtype=torch.bool)


def from_position(start: int) -> PositionMask:
    """Positions `start` and later (e.g. the first generated token and on)."""
    return lambda pos: pos >= start


def modality_positions(modality: list[str], keep: str = "speech",
                       beyond: str = "speech") -> PositionMask:
    """Positions whose modality is `keep`; positions past the list (generated) count as `beyond`."""
    table = torch.tensor([m == keep for m in modality], dtype=torch.bool)

    def mask(pos: torch.Tensor) -> torch.Tensor:
        inside = pos < len(table)
        out = torch.full_like(pos, beyond == keep, dtype=torch.bool)
        out[inside] = table[pos[inside].cpu()].to(pos.device)
        return out

    return mask


@dataclass
class Intervention:
    """At `hook`, replace the activation x (B, T, D) by fn(x) where `positions` says so."""

    hook: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    positions: PositionMask = field(default_factory=all_positions)
    seen: int = 0  # positions passed so far in this context

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(self.seen, self.seen + x.shape[1], device=x.device)
        self.seen += x.shape[1]
        mask = self.positions(pos)
        if not mask.any():
            return x
        return torch.where(mask[None, :, None], self.fn(x).to(x.dtype), x)


def _attach(layer: nn.Module, kind: str, iv: Intervention) -> list:
    if kind == "hook_resid_pre":
        def pre(_m, args, kwargs):
            if args:
                return (iv.apply(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": iv.apply(kwargs["hidden_states"])}
        return [layer.register_forward_pre_hook(pre, with_kwargs=True)]
    if kind == "hook_resid_mid":
        # resid_mid = resid_pre + attn_out: edit it by adding (f(mid) - mid) to attn_out, so the
        # residual stream and the MLP both see the edited value.
        state: dict[str, torch.Tensor] = {}

        def keep_pre(_m, args, kwargs):
            state["pre"] = args[0] if args else kwargs["hidden_states"]

        def edit_attn(_m, _args, out):
            attn = first(out)
            mid = state.pop("pre") + attn
            return replace_first(out, attn + (iv.apply(mid) - mid))

        return [layer.register_forward_pre_hook(keep_pre, with_kwargs=True),
                layer.self_attn.register_forward_hook(edit_attn)]
    module = {"hook_resid_post": layer, "hook_attn_out": layer.self_attn,
              "hook_mlp_out": layer.mlp}[kind]
    return [module.register_forward_hook(
        lambda _m, _args, out: replace_first(out, iv.apply(first(out))))]


@contextmanager
def intervene(model: nn.Module, interventions: Intervention | list[Intervention]
              ) -> Iterator[list[Intervention]]:
    """Apply the interventions to every forward pass of `model` inside the block."""
    ivs = [interventions] if isinstance(interventions, Intervention) else list(interventions)
    layers = decoder_layers(model)
    handles = []
    try:
        for iv in ivs:
            layer, kind = parse_hook(iv.hook, len(layers))
            iv.seen = 0
            handles += _attach(layers[layer], kind, iv)
        yield ivs
    finally:
        for h in handles:
            h.remove()
