"""TinyCosy's training loss: next-speech-token cross-entropy over padded batches, with the two
terms the shipped recipe uses — speech noise (random codes in the input copy of the target, so
the model must read its text) and the attention guide (`interp.models.guide`).

`interp.models.train` (the loop and export), TinyEdit's training and evaluation, the SAE's
loss-recovered figure and the benchmarks all take their loss from here.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.utils.rnn import pad_sequence

from interp.models.data import Example
from interp.models.guide import attention_inputs, guide_loss
from interp.models.tinycosy import TinyCosy


def corrupt(target: torch.Tensor, frac: float, n_codes: int, gen: torch.Generator) -> torch.Tensor:
    """`target` with a random `frac` of its tokens replaced by uniformly drawn codes."""
    flip = torch.rand(target.shape, generator=gen) < frac
    return torch.where(flip, torch.randint(0, n_codes, target.shape, generator=gen), target)



PRECISIONS = ("auto", "bf16", "fp32")


def autocast_bf16(device: torch.device, precision: str) -> bool:
    """Whether a training pass runs in bf16 autocast (`LoopConfig.precision`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: give one of {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")



def forward_batch(model: TinyCosy, embeds: torch.Tensor, mask: torch.Tensor,
             precision: str = "auto") -> torch.Tensor:
    """Speech logits of a padded batch, in bf16 autocast where `precision` says so."""
    dev = embeds.device
    bf16 = autocast_bf16(dev, precision)
    # On the CPU, the flash kernel's bf16 backward is slower than its fp32 one (2x at these
    # lengths); the math kernel, whose matmuls then run in bf16, is the fastest.
    kernel = sdpa_kernel(SDPBackend.MATH) if bf16 and dev.type == "cpu" else nullcontext()
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16), kernel:
        return model(embeds, attention_mask=mask)[0]



def embed_batch(model: TinyCosy, batch: list[Example], inputs: list[torch.Tensor],
           pad_multiple: int = 0):
    """(B, T, D) padded embeddings of [sos] text [task_id] prompt + `inputs` (the input copies of
    the targets), their attention mask, and where each example's predictions start. T is the
    longest sequence, rounded up to a multiple of `pad_multiple` when that is given."""
    dev = model.speech_embedding.weight.device
    seqs, starts = [], []
    for ex, inp in zip(batch, inputs, strict=True):
        pre = model.prefix(ex.text_ids, ex.prompt)
        seqs.append(torch.cat([pre, model.speech_embedding(inp.to(dev))]))
        starts.append(len(pre) - 1)
    lengths = torch.tensor([len(s) for s in seqs], device=dev)
    embeds = pad_sequence(seqs, batch_first=True)
    if pad_multiple > 1:
        embeds = torch.nn.functional.pad(embeds, (0, 0, 0, -embeds.shape[1] % pad_multiple))
    mask = (torch.arange(embeds.shape[1], device=dev)[None] < lengths[:, None]).long()
    return embeds, mask, starts



def batch_loss(model: TinyCosy, batch: list[Example], speech_noise: float = 0.0,
               gen: torch.Generator | None = None, attn_guide: float = 0.0,
               attn_guide_layer: int = 10, attn_guide_head: int = 0,
               precision: str = "auto", pad_multiple: int = 0) -> torch.Tensor:
    """Mean next-token cross-entropy over target speech tokens and eos. The labels are always the
    clean targets; with `speech_noise`, a fraction of their input copy is replaced by random codes
    (`corrupt`). With `attn_guide`, plus that weight times the guided-attention loss
    (`interp.models.guide.guide_loss`). `precision` and `pad_multiple` as `LoopConfig`'s."""
    dev = model.speech_embedding.weight.device
    gen = gen or torch.Generator()
    inputs = [ex.target for ex in batch]
    if speech_noise:
        inputs = [corrupt(x, speech_noise, model.cfg.speech_codes, gen) for x in inputs]
    embeds, mask, starts = embed_batch(model, batch, inputs, pad_multiple)
    labels = [torch.cat([ex.target, torch.tensor([model.eos])]).to(dev) for ex in batch]
    with attention_inputs(model, [attn_guide_layer] if attn_guide else []) as seen:
        logits = forward_batch(model, embeds, mask, precision)
    picked = torch.cat([logits[b, s : s + len(y)]
                        for b, (s, y) in enumerate(zip(starts, labels, strict=True))])
    loss = torch.nn.functional.cross_entropy(picked.float(), torch.cat(labels))
    if attn_guide:
        loss = loss + attn_guide * guide_loss(model, seen[attn_guide_layer], mask, starts, batch,
                                              attn_guide_layer, attn_guide_head)
    return loss


@torch.no_grad()
def heldout_loss(model: TinyCosy, examples: list[Example], bs: int, precision: str = "auto") -> float:
    """Mean next-token loss (nats per target token, eos included) over `examples`, no noise."""
    model.eval()
    total, n = 0.0, 0
    # eagerly even when --compile'd: compiling the no-grad graph would take minutes for seconds
    with torch.compiler.set_stance("force_eager"):
        for i in range(0, len(examples), bs):
            batch = examples[i : i + bs]
            k = sum(len(e.target) + 1 for e in batch)
            total += batch_loss(model, batch, precision=precision).item() * k
            n += k
    model.train()
    return total / max(n, 1)

