"""One small optimisation loop (AdamW, warm-up + cosine, a step and a time budget) for every
model the workbench fits that is not a backbone: the listening instruments and the codec's token
decoder."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    steps: int
    lr: float
    warmup: int
    max_minutes: float
    weight_decay: float = 0.01
    clip: float = 1.0


def lr_at(step: int, cfg: LoopConfig, progress: float | None = None) -> float:
    """Linear warm-up over `cfg.warmup` steps, then cosine decay to 5% of the peak by the end.

    `progress` (0..1) is how far training is; by default the share of steps done. The loop
    passes the larger of that and the share of the time budget used, so a run cut short by
    `max_minutes` still ends annealed.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if progress is None:
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def fit(model: torch.nn.Module, step_loss: Callable[[int], torch.Tensor], cfg: LoopConfig,
        desc: str) -> dict:
    """Run `cfg.steps` AdamW steps of `step_loss(step)`, or fewer when `max_minutes` runs out
    first (the learning-rate schedule follows whichever budget is closer to its end).

    Returns the history: steps done, wall seconds, smoothed loss at the end, loss every 50 steps.
    """
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, ema, curve = time.time(), None, []
    bar = tqdm(range(cfg.steps), desc=desc, unit="step")
    step = 0
    budget = cfg.max_minutes * 60
    stopped_by_time = False
    for step in bar:
        used = (time.time() - start) / budget
        by_steps = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, max(by_steps, used))
        loss = step_loss(step)
        if not torch.isfinite(loss):
            logger.warning("non-finite loss at step %d; skipped", step)
            opt.zero_grad(set_to_none=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 50 == 0:
            curve.append((step, round(ema, 4)))
        bar.set_postfix(loss=f"{ema:.3f}")
        if time.time() - start > budget:
            logger.warning("time budget of %.1f min reached at step %d", cfg.max_minutes, step)
            stopped_by_time = True
            break
    bar.close()
    model.eval()
    return {"steps": step + 1, "stopped_by_time_budget": stopped_by_time,
            "wall_s": round(time.time() - start, 1),
            "final_loss": None if ema is None else round(ema, 4), "loss_curve": curve}
