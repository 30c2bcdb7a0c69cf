"""Capture overhead: bare teacher-forced forward vs forward + capture of 1 and of all layers.

Side by side in one run, on sequences of the corpus's typical shape ([sos] 25 text tokens
[task_id] 60 prompt + 75 target speech tokens), with the default TinyCosy size. The capture
includes the fp16 copy to CPU and the write to disk of `python -m interp.cache`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from interp.hooks import capture
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from interp.models.tinycosy_backbone import TinyCosyBackbone
from interp.paths import TINYCOSY_DIR


def _model() -> TinyCosyBackbone:
    if (TINYCOSY_DIR / "model.safetensors").exists():
        return TinyCosyBackbone(TinyCosy.load(TINYCOSY_DIR))
    return TinyCosyBackbone(TinyCosy(TinyCosyConfig()).eval())


def _run(bb: TinyCosyBackbone, seqs, names: list[str], folder: Path | None) -> float:
    start = time.perf_counter()
    for i, (text, prompt, target) in enumerate(seqs):
        with torch.no_grad(), capture(bb.model, names, dtype=torch.float16) as cache:
            bb.teacher_forced(text, prompt, target)
        if folder is not None:
            for n, x in cache.items():
                np.save(folder / f"{i}_{n}.npy", x[0].numpy())
    return time.perf_counter() - start


def run(n_seqs: int = 40, repeats: int = 3) -> dict:
    torch.manual_seed(0)
    bb = _model()
    codes = bb.model.cfg.speech_codes
    seqs = [(torch.randint(0, 500, (25,)), torch.randint(0, codes, (60,)),
             torch.randint(0, codes, (75,))) for _ in range(n_seqs)]
    tokens = n_seqs * (1 + 25 + 1 + 60 + 75)
    layers = {"bare": [], "layer_12": [f"blocks.{bb.n_layers // 2}.hook_resid_post"],
              "all_layers": [f"blocks.{layer}.hook_resid_post" for layer in range(bb.n_layers)]}
    _run(bb, seqs[:4], [], None)  # warm-up
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):  # interleaved, so load changes hit every variant alike
            for name, names in layers.items():
                t = _run(bb, seqs, names, Path(tmp) if names else None)
                best[name] = min(best.get(name, float("inf")), t)
    bare = best["bare"]
    return {
        "tokens": tokens, "threads": torch.get_num_threads(), "d_model": bb.d_model,
        "tokens_per_s": {k: round(tokens / v, 1) for k, v in best.items()},
        "overhead_vs_bare": {k: round(v / bare - 1, 4) for k, v in best.items() if k != "bare"},
        "bytes_per_token": {"layer_12": 2 * bb.d_model, "all_layers": 2 * bb.d_model * bb.n_layers},
        "goal": "capturing one layer costs <= 10% over the bare forward pass",
    }
