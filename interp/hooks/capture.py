"""Read activations at hook points: `capture` for any forward passes, `run_with_cache` for one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import torch
from torch import nn

from interp.hooks.points import decoder_layers, first, parse_hook
from interp.models.data import TOKEN_RATE

Saver = Callable[[torch.Tensor], None]


def attach(layer: nn.Module, kind: str, read: Callable[[torch.Tensor], None]) -> list:
    """Register hooks that call `read(hidden (B, T, D))` at `kind` of `layer`; returns handles."""
    if kind == "hook_resid_pre":
        def pre(_m, args, kwargs):
            read(args[0] if args else kwargs["hidden_states"])
        return [layer.register_forward_pre_hook(pre, with_kwargs=True)]
    if kind == "hook_resid_mid":
        return [layer.post_attention_layernorm.register_forward_pre_hook(
            lambda _m, args: read(args[0]))]
    module = {"hook_resid_post": layer, "hook_attn_out": layer.self_attn,
              "hook_mlp_out": layer.mlp}[kind]
    return [module.register_forward_hook(lambda _m, _args, out: read(first(out)))]


class ActivationCache(dict):
    """hook name → (B, T, D) tensor; several forward passes (a generation) are joined along T."""


class StopForward(Exception):  # noqa: N818 - a signal, not an error
    """Raised by `capture(stop=True)` once the deepest requested layer has run."""


@contextmanager
def capture(model: nn.Module, names: list[str], to_cpu: bool = True,
            dtype: torch.dtype | None = None, stop: bool = False) -> Iterator[ActivationCache]:
    """Inside the block, every forward pass of `model` records the named hook points.

    `stop=True` (caching: SAELens's `stop_at_layer`): the forward is cut after the deepest
    requested layer, so the layers above it and the head are never computed; the block ends
    there, without the forward's return value (its outputs would be wrong anyway). For one
    forward pass per block."""
    layers = decoder_layers(model)
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = []
    cache = ActivationCache()
    deepest = -1
    try:
        for name in names:
            layer, kind = parse_hook(name, len(layers))
            deepest = max(deepest, layer)

            def read(x: torch.Tensor, name: str = name) -> None:
                x = x.detach().to(dtype or x.dtype)  # cast where it lives: less to copy
                parts[name].append(x.cpu() if to_cpu else x)

            handles += attach(layers[layer], kind, read)
        if stop and names:
            def cut(_m, _args, _out) -> None:
                raise StopForward

            # registered last: the deepest layer's own reads (its resid_post hook, and the
            # submodules' hooks inside it) have all run when this one fires
            handles.append(layers[deepest].register_forward_hook(cut))
        with suppress(StopForward):  # the forward was cut where asked: what was read is all
            yield cache
    finally:
        for h in handles:
            h.remove()
        cache.update({n: torch.cat(p, dim=1) for n, p in parts.items() if p})


@torch.no_grad()
def run_with_cache(backbone, text_ids: torch.Tensor, prompt: torch.Tensor, target: torch.Tensor,
                   names_filter: list[str] | Callable[[str], bool] | None = None):
    """TransformerLens-style: (teacher-forced output, cache of the selected hook points)."""
    names = backbone.hook_points()
    if callable(names_filter):
        names = [n for n in names if names_filter(n)]
    elif names_filter is not None:
        names = list(names_filter)
    with capture(backbone.model, names) as cache:
        out = backbone.teacher_forced(text_ids, prompt, target)
    return out, cache


@dataclass(frozen=True)
class GeneratedCapture:
    """Activations of a generation: the prefix, then one position per generated token."""

    tokens: list[int]  # generated speech tokens
    cache: ActivationCache  # name → (1, T_prefix + len(tokens), D)
    modality: list[str]  # per position
    t0: list[float | None]  # start second of each generated token in the rendered audio


@torch.no_grad()
def generate_with_cache(backbone, text_ids: torch.Tensor, prompt: torch.Tensor, n_text: int,
                        names: list[str], sampling=None) -> GeneratedCapture:
    """Generate speech and capture the named hook points at every step (KV-cached, so each step
    adds exactly the position of the token it was fed). Position T_prefix + j holds generated
    token j, which sounds at [j/25, (j+1)/25) s of the decoded audio."""
    with capture(backbone.model, names) as cache:
        tokens = backbone.generate(text_ids, prompt, n_text, sampling)
    prefix = backbone.model.modality(len(text_ids), len(prompt), 0)  # the backbone's own layout
    # Every kept token is fed back once; the stop token that ends generation is not.
    fed = next(iter(cache.values())).shape[1] - len(prefix) if cache else 0
    return GeneratedCapture(tokens, cache, prefix + ["speech"] * fed,
                            [None] * len(prefix) + [j / TOKEN_RATE for j in range(fed)])
