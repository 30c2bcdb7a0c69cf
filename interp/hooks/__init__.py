"""Hook points with TransformerLens names on any Qwen2-style backbone: capture and intervene.

Why not TransformerLens itself: `HookedTransformer` rebuilds a model from a hub name and its own
weight conversion, and cannot take TinyCosy's speech embeddings as `inputs_embeds`; so the same
hook grammar (`blocks.{L}.hook_resid_pre|resid_mid|resid_post|attn_out|mlp_out`) is put on the
`transformers` modules with torch hooks, attached in context managers that always remove them.
"""

from interp.hooks.capture import StopForward, capture, run_with_cache
from interp.hooks.intervene import (
           AddVector,
           ClampProjection,
           Intervention,
           KeepNorm,
           RowPositions,
           all_positions,
           from_position,
           intervene,
           intervene_rows,
           modality_positions,
)
from interp.hooks.points import HOOK_KINDS, hook_names, parse_hook

__all__ = ["HOOK_KINDS", "AddVector", "ClampProjection", "Intervention", "KeepNorm", "RowPositions",
           "StopForward", "all_positions", "capture", "from_position", "hook_names", "intervene",
           "intervene_rows", "modality_positions", "parse_hook", "run_with_cache"]
