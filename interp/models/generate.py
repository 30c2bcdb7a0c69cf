"""Speech-token generation with a KV cache and CosyVoice's sampling.

Sampling is CosyVoice's: nucleus sampling (top-p 0.8 within the top 25) with the
repetition-aware fallback of VALL-E 2 — when the sampled token already fills `tau_r` of the last
`win_size` tokens, sample again from the whole distribution. Stop ids (eos and the rest of the
+200 block) are masked until `min_len`; the length bounds come from the text length, as in
CosyVoice (min 2, max 20 speech tokens per text token).

`generate_batch` makes several sequences at once (different texts, prompts and lengths) in one
KV-cached pass per step, each row exactly as `generate_tokens` makes it alone: its own seeded
sampler and history, its own length bounds and stop; finished rows leave the batch.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from interp.models.tinycosy import TinyCosy

log = logging.getLogger(__name__)
PROGRESS_FROM = 1000  # speech tokens (40 s): longer generations show a progress bar


@dataclass(frozen=True)
class SamplingConfig:
    """How speech tokens are drawn."""

    top_k: int = 25
    """nucleus sampling: at most this many candidates"""
    top_p: float = 0.8
    """nucleus sampling: smallest set with this much probability"""
    win_size: int = 10
    """repetition-aware sampling: window of recent tokens"""
    tau_r: float = 0.1
    """repetition-aware sampling: fraction of the window that triggers the fallback"""
    min_ratio: float = 2.0
    """at least this many speech tokens per text token"""
    max_ratio: float = 20.0
    """at most this many speech tokens per text token"""
    seed: int = 0
    """random seed of the sampler"""

    def __post_init__(self):
        if self.top_k < 1 or not 0 < self.top_p <= 1:
            raise ValueError(f"top-k {self.top_k}, top-p {self.top_p}: give top-k ≥ 1 (1 = greedy) "
                             "and top-p in (0, 1], e.g. CosyVoice's 25 and 0.8")


def nucleus(logits: torch.Tensor, top_p: float, top_k: int, gen: torch.Generator) -> int:
    probs, idx = logits.softmax(-1).sort(descending=True, stable=True)
    keep = (probs.cumsum(-1) - probs) < top_p  # tokens before the mass reaches top_p
    keep[top_k:] = False
    keep[0] = True
    p = probs[keep]
    return int(idx[keep][torch.multinomial(p / p.sum(), 1, generator=gen)])


def ras_sample(logits: torch.Tensor, history: list[int], cfg: SamplingConfig,
               gen: torch.Generator) -> int:
    tok = nucleus(logits, cfg.top_p, cfg.top_k, gen)
    if history[-cfg.win_size :].count(tok) >= cfg.win_size * cfg.tau_r:
        tok = int(torch.multinomial(logits.softmax(-1), 1, generator=gen))
    return tok


def length_bounds(model: TinyCosy, n_prefix: int, n_text: int, cfg: SamplingConfig
                  ) -> tuple[int, int]:
    """(min, max) speech tokens for a text of `n_text` units after a prefix of `n_prefix`
    positions, within the model's positions: a prefix that leaves no room for the speech the
    text needs is refused in one line; a maximum past the last position is capped (logged)."""
    limit = getattr(getattr(model, "cfg", None), "max_positions", None)
    min_len, max_len = int(n_text * cfg.min_ratio), max(1, int(n_text * cfg.max_ratio))
    if limit is None:
        return min_len, max_len
    room = limit - n_prefix
    if room < max(min_len, 1):
        raise ValueError(
            f"text too long for the model: its prompt takes {n_prefix} of {limit} positions and "
            f"its speech needs at least {max(min_len, 1)} more; split the text ({n_text} length "
            "units) into shorter parts and speak them one by one")
    if max_len > room:
        log.warning("capping generation at %d speech tokens (the model has %d positions, the "
                    "prompt takes %d); the text may be cut short", room, limit, n_prefix)
        max_len = room
    return min_len, max_len


@torch.no_grad()
def generate_tokens(model: TinyCosy, text_ids: torch.Tensor, prompt: torch.Tensor,
                    n_text: int, cfg: SamplingConfig | None = None) -> list[int]:
    """Speech tokens after [sos] text [task_id] prompt, until eos.

    `n_text` is the length of the text to speak (not of the system prompt or prompt text): it
    sets the length bounds, which must fit the model's positions (`length_bounds`).
    """
    cfg = cfg or SamplingConfig()
    gen = torch.Generator().manual_seed(cfg.seed)
    codes = model.cfg.speech_codes
    min_len, max_len = length_bounds(model, len(text_ids) + len(prompt) + 2, n_text, cfg)
    embeds = model.prefix(text_ids, prompt)[None]  # (1, T, D)
    logits, past = model(embeds, use_cache=True)
    out: list[int] = []
    for i in tqdm(range(max_len), desc="speech tokens", unit="tok", leave=False,
                  disable=max_len < PROGRESS_FROM):
        step = logits[0, -1].float().cpu()
        if i < min_len:
            step[codes:] = float("-inf")  # no stop before min_len
        tok = ras_sample(step, out, cfg, gen)
        if tok >= codes:  # eos or any other id of the +200 block ends generation
            break
        out.append(tok)
        nxt = model.speech_embedding(torch.tensor([[tok]], device=embeds.device))
        logits, past = model(nxt, past_key_values=past, use_cache=True)
    return out


Row = tuple[torch.Tensor, torch.Tensor, int]  # (text ids, prompt speech tokens, n_text)
RowObserver = Callable[[torch.Tensor, torch.Tensor], None]
"""Told before every forward pass of a batched generation: (B, T) absolute position of each
column in its own row (-1 at padding), and (B,) which of the given rows the batch rows are."""


def can_generate_batch(model: torch.nn.Module) -> bool:
    """Whether `generate_batch` can drive `model`: its forward takes an attention mask and
    per-row position ids (rows of different lengths share one cache)."""
    params = inspect.signature(model.forward).parameters
    return "attention_mask" in params and "position_ids" in params


def _per_row(cfgs: SamplingConfig | Sequence[SamplingConfig] | None, n: int
             ) -> list[SamplingConfig]:
    if cfgs is None or isinstance(cfgs, SamplingConfig):
        return [cfgs or SamplingConfig()] * n
    cfgs = list(cfgs)
    if len(cfgs) != n:
        raise ValueError(f"{len(cfgs)} sampling configs for {n} rows; give one per row (or one "
                         "for all)")
    return cfgs


@torch.no_grad()
def generate_batch(model: TinyCosy, rows: Sequence[Row],
                   cfgs: SamplingConfig | Sequence[SamplingConfig] | None = None,
                   observer: RowObserver | None = None) -> list[list[int]]:
    """Speech tokens of several (text ids, prompt, n_text) rows at once, row i exactly what
    `generate_tokens(model, *rows[i], cfgs[i])` gives alone (up to floating-point summation
    order of the batched matmuls): each row samples with its own generator seeded by its
    config's seed, in the same order of draws, from its own logits and history; each has its own
    length bounds and stops on its own.

    The prefixes are right-padded to the longest, with an attention mask; positions count from 0
    in every row, so the prefill's rotary positions are the plain 0..T-1, and each generated
    token of row i gets position len(prefix_i) + step while its keys sit after the padding, which
    the mask hides. A row that stops leaves the batch (and the cache). `observer` is told every
    pass's per-row positions (what per-row steering hooks need, `interp.hooks.intervene_rows`).
    """
    if not rows:
        return []
    cfgs = _per_row(cfgs, len(rows))
    codes = model.cfg.speech_codes
    gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    bounds = [length_bounds(model, len(t) + len(p) + 2, n, c)
              for (t, p, n), c in zip(rows, cfgs, strict=True)]
    prefixes = [model.prefix(t, p) for t, p, _ in rows]
    dev = prefixes[0].device
    lens = torch.tensor([len(x) for x in prefixes])
    width = int(lens.max())
    longest = max(hi for _, hi in bounds)
    # the attention mask of every column the generation can reach: prefix columns now, one
    # generated column per step
    mask = torch.zeros(len(rows), width + longest, dtype=torch.long)
    mask[:, :width] = torch.arange(width)[None] < lens[:, None]
    cols = torch.arange(width)
    if observer is not None:
        observer(torch.where(mask[:, :width].bool(), cols, -1), torch.arange(len(rows)))
    logits, past = model(pad_sequence(prefixes, batch_first=True),
                         attention_mask=mask[:, :width].to(dev),
                         position_ids=cols[None].expand(len(rows), -1).to(dev), use_cache=True)
    steps = logits[torch.arange(len(rows), device=dev), (lens - 1).to(dev)]  # (B, V)
    outs: list[list[int]] = [[] for _ in rows]
    active = list(range(len(rows)))  # which rows the batch rows are
    pos = lens.clone()  # next position of each batch row
    for i in tqdm(range(longest), desc="speech tokens", unit="step", leave=False,
                  disable=longest < PROGRESS_FROM):
        keep, toks = [], []
        host = steps.float().cpu()  # one transfer for all rows
        for b, r in enumerate(active):
            step = host[b]
            if i < bounds[r][0]:
                step[codes:] = float("-inf")  # no stop before min_len
            tok = ras_sample(step, outs[r], cfgs[r], gens[r])
            if tok >= codes:  # eos or any other id of the +200 block ends this row
                continue
            outs[r].append(tok)
            if len(outs[r]) < bounds[r][1]:
                keep.append(b)
                toks.append(tok)
        if not keep:
            break
        if len(keep) < len(active):  # finished rows leave the batch and its cache
            idx = torch.tensor(keep)
            past.batch_select_indices(idx.to(dev))
            mask, pos = mask[idx], pos[idx]
            active = [active[b] for b in keep]
        mask[:, width + i] = 1
        if observer is not None:
            observer(pos[:, None].clone(), torch.tensor(active))
        nxt = model.speech_embedding(torch.tensor(toks, device=dev)[:, None])
        logits, past = model(nxt, attention_mask=mask[:, : width + i + 1].to(dev),
                             position_ids=pos[:, None].to(dev), past_key_values=past,
                             use_cache=True)
        steps = logits[:, -1]
        pos += 1
    return outs
