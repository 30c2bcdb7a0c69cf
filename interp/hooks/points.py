"""Where each TransformerLens hook name lives inside a `transformers` Qwen2 decoder layer.

A Qwen2 layer computes
    resid_mid  = resid_pre + self_attn(input_layernorm(resid_pre))     # attn_out
    resid_post = resid_mid + mlp(post_attention_layernorm(resid_mid))  # mlp_out
so resid_pre is the layer's input, resid_post its output, attn_out and mlp_out the outputs of
`self_attn` and `mlp`, and resid_mid the input of `post_attention_layernorm`.
"""

from __future__ import annotations

import re

from torch import nn

HOOK_KINDS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
              "hook_mlp_out")
_NAME = re.compile(r"^blocks\.(\d+)\.(hook_\w+)$")


def hook_names(n_layers: int) -> list[str]:
    """Every hook point, layer by layer in forward order."""
    return [f"blocks.{layer}.{kind}" for layer in range(n_layers) for kind in HOOK_KINDS]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a backbone module (TinyCosy, an adapter, or a bare HF model)."""
    for path in ("layers", "model.layers", "model.model.layers", "llm.model.model.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(f"cannot find decoder layers in {type(model).__name__}: expected a "
                     "Qwen2/Llama-style model with .model.layers")


def parse_hook(name: str, n_layers: int) -> tuple[int, str]:
    """(layer, kind) of a hook name; an unknown name is an error that lists the valid ones."""
    m = _NAME.match(name)
    if not m or int(m.group(1)) >= n_layers or m.group(2) not in HOOK_KINDS:
        raise ValueError(f"unknown hook point {name!r}: valid are blocks.{{0..{n_layers - 1}}}."
                         f"{{{','.join(k[5:] for k in HOOK_KINDS)}}} with the hook_ prefix, e.g. "
                         f"blocks.{n_layers // 2}.hook_resid_post")
    return int(m.group(1)), m.group(2)


def first(x):
    """The hidden states of a module output that may be a tuple."""
    return x[0] if isinstance(x, tuple) else x


def replace_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new
