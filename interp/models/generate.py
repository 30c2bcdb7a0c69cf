"""Speech-token generation with a KV cache and CosyVoice's sampling.

Sampling is CosyVoice's: nucleus sampling (top-p 0.8 within the top 25) with the
repetition-aware fallback of VALL-E 2 — when the sampled token already fills `tau_r` of the last
`win_size` tokens, sample again from the whole distribution. Stop ids (eos and the rest of the
+200 block) are masked until `min_len`; the length bounds come from the text length, as in
CosyVoice (min 2, max 20 speech tokens per text token).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
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
