"""The attention guide: which text tokens a head attends to at each speech frame.

`guide_loss` asks one head to point at the word being spoken (the corpus's word timings):
the `--attn-guide` term of the training loss. `head_attention` and `word_mass` recompute any
head's attention from its captured inputs; `interp.models.alignment` reports them per head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

from interp.models.data import Example
from interp.models.tinycosy import TinyCosy


@contextlib.contextmanager
def attention_inputs(model: TinyCosy, layers: list[int]) -> Iterator[dict[int, tuple]]:
    """While open, each forward pass stores, per layer in `layers`, what its self-attention was
    given: (normed hidden states (B, T, D), (cos, sin) of the rotary embedding). Gradients kept."""
    seen: dict[int, tuple] = {}

    def grab(layer: int):
        def hook(_module, args, kwargs):
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            seen[layer] = (hidden, kwargs["position_embeddings"])
        return hook

    handles = [model.layers[i].self_attn.register_forward_pre_hook(grab(i), with_kwargs=True)
               for i in layers]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def head_attention(model: TinyCosy, layer: int, inputs: tuple, mask: torch.Tensor,
                   heads: list[int] | None = None) -> torch.Tensor:
    """(B, len(heads), T, T) attention probabilities of `heads` (default all) of `layer`,
    recomputed from its captured inputs with the causal and padding masks (`mask`: (B, T), 1 =
    real). The same numbers the layer's softmax produced, with gradients to its q/k weights."""
    attn = model.layers[layer].self_attn
    hidden, (cos, sin) = inputs
    # captured under bf16 autocast on CUDA; recomputed here in the weights' precision
    dtype = attn.q_proj.weight.dtype
    hidden, cos, sin = hidden.to(dtype), cos.to(dtype), sin.to(dtype)
    B, T, _ = hidden.shape
    d = attn.head_dim
    heads = list(range(model.cfg.n_heads)) if heads is None else heads
    q = attn.q_proj(hidden).view(B, T, -1, d).transpose(1, 2)
    k = attn.k_proj(hidden).view(B, T, -1, d).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    group = attn.num_key_value_groups
    q = q[:, heads]
    k = k[:, [h // group for h in heads]]
    scores = (q.float() @ k.float().transpose(-1, -2)) * attn.scaling
    causal = torch.ones(T, T, dtype=torch.bool, device=hidden.device).tril()
    allowed = causal[None, None] & mask.bool()[:, None, None, :]
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1)


def word_mass(probs: torch.Tensor, starts: list[int], batch: list[Example]) -> torch.Tensor:
    """(n_frames, H) attention mass on the tokens of the word being spoken, over every in-word
    target frame of `batch` (`probs`: (B, H, T, T) from `head_attention`)."""
    out = []
    for b, (s, ex) in enumerate(zip(starts, batch, strict=True)):
        span = ex.spoken_span
        keep = (span[:, 0] >= 0).nonzero()[:, 0]
        if not len(keep):
            continue
        rows = probs[b, :, s + keep]  # (H, n, T)
        cum = torch.nn.functional.pad(rows.cumsum(-1), (1, 0))  # cum[..., i] = mass before i
        frame = torch.arange(len(keep))
        lo, hi = 1 + span[keep, 0], 2 + span[keep, 1]  # text index i sits at position 1 + i
        out.append((cum[:, frame, hi] - cum[:, frame, lo]).T)
    if not out:
        raise ValueError("no in-word frames: these examples have no word timings")
    return torch.cat(out)


def guide_loss(model: TinyCosy, inputs: tuple, mask: torch.Tensor, starts: list[int],
               batch: list[Example], layer: int, head: int) -> torch.Tensor:
    """Guided attention: −log of the mass `head` of `layer` puts on the word being spoken,
    averaged over in-word target frames."""
    probs = head_attention(model, layer, inputs, mask, [head])
    return -word_mass(probs, starts, batch)[:, 0].clamp_min(1e-6).log().mean()

