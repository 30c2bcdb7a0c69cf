"""TinyCosy training speed: where a training step's time goes, and what the design's budget buys.

The design asks that the default model train in ≤ 15 minutes on one H100 or ≤ 2 hours on 2 CPU
cores. Side by side in one run, on the default TinyCosy size and batches of the corpus (training
examples, length-sorted and padded as the training loop does, when `runs/tinycosy/corpus` and its
tokens are there, else synthetic ones of the corpus's typical shape):
- one optimiser step of the shipped recipe (its speech noise and attention guide, read from
  data/tinycosy/train.json; forward, backward, clipping, AdamW), one without noise and guide, and
  the forward pass alone;
- the floating-point operations of a step, counted by `torch.utils.flop_counter` (matmuls and
  attention), so the achieved GFLOP/s can be set against what this device's matmul reaches on
  large square matrices and on matrices of the model's own shapes, in the same run;
- the same step in bf16 autocast (`--precision bf16` of the training CLI) and, with `--compile`,
  bf16 and torch.compile'd, in the same run;
- the projection: the shipped lineage's optimiser steps (every stage in data/tinycosy/train.json)
  at each measured step time, against the budget — and at the large bf16 matmul's rate, a floor
  no implementation of this model and data on this device gets under.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import write_entry
from interp.cli import run_cli
from interp.device import pick_device
from interp.models.data import Example
from interp.models.loss import autocast_bf16, batch_loss
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from interp.models.train import LoopConfig, batches
from interp.paths import TINYCOSY_DIR

CORPUS, TOKENS = Path("runs/tinycosy/corpus"), Path("runs/tinycosy/tokens")
RECIPE_KEYS = ("speech_noise", "attn_guide", "attn_guide_layer", "attn_guide_head")
BUDGET_HOURS = {"cpu": 2.0, "cuda": 0.25}  # the design's: 2 h on 2 CPU cores, 15 min on an H100
BATCH = LoopConfig.batch_size


def shipped_run(train_json: Path = TINYCOSY_DIR / "train.json") -> tuple[dict, int]:
    """The `batch_loss` settings of the shipped checkpoint's last stage, and the optimiser steps of
    every stage that made it."""
    d = json.loads(train_json.read_text())
    recipe = {k: d["config"][k] for k in RECIPE_KEYS}
    total = 0
    while d:
        total += d["steps"]
        d = d.get("continued_from")
    return recipe, total


def _synthetic(n: int, codes: int, gen: torch.Generator) -> list[Example]:
    """The corpus's typical shape ([sos] 25 text tokens [task_id] 60 prompt + 75 target speech
    tokens, as benchmarks.capture), lengths varied ±20%, eight words of three text tokens each
    spoken in turn (for the attention guide)."""
    out = []
    for i in range(n):
        n_text, n_prompt, n_target = (int(x * (0.8 + 0.4 * torch.rand(1, generator=gen).item()))
                                      for x in (25, 60, 75))
        word = torch.arange(n_target) * 8 // n_target
        span = torch.stack([n_text - 24 + 3 * word, n_text - 22 + 3 * word], 1)
        out.append(Example(f"s{i}", torch.randint(0, 500, (n_text,), generator=gen),
                           torch.randint(0, codes, (n_prompt,), generator=gen),
                           torch.randint(0, codes, (n_target,), generator=gen),
                           spoken_span=span.clamp(0, n_text - 1)))
    return out


def corpus_examples(n: int, codes: int) -> tuple[list[Example], str]:
    """`n` of the corpus's training examples (as `interp.models.train` makes them) when the
    corpus and its tokens are there, else synthetic ones."""
    if (CORPUS / "utterances.parquet").exists() and (TOKENS / "manifest.json").exists():
        from interp.audio.tokenize_corpus import load_tokens
        from interp.corpus.table import load_table
        from interp.models.data import make_examples
        from interp.models.text_tokenizer import load_tokenizer

        rows = load_table(CORPUS)
        train = [r for r in rows if r["split"] == "train"][: 4 * n]
        ex = make_examples(train, load_tokens(TOKENS), load_tokenizer(TINYCOSY_DIR), seed=0,
                           prompt_rows=rows)
        return ex[:n], str(CORPUS)
    return _synthetic(n, codes, torch.Generator().manual_seed(0)), "synthetic"


def matmul_gflops(m: int, k: int, n: int, device: torch.device, dtype: torch.dtype,
                  seconds: float = 1.0) -> float:
    """Throughput of repeated (m×k)·(k×n) matmuls in `dtype`."""
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    _sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
        reps += 10
        _sync(device)
    return 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def run(n_batches: int = 4, repeats: int = 3, device: str = "auto", compile: bool = False) -> dict:
    """Step times of the shipped recipe in the device's default precision (`recipe_step`: fp32 on
    the CPU, bf16 autocast on CUDA), without noise and guide, forward only, in bf16 autocast
    (`--precision bf16`; on CUDA the default already), and with `compile` also bf16 + compiled."""
    torch.manual_seed(0)
    dev = pick_device(device)
    model = TinyCosy(TinyCosyConfig()).to(dev).train()
    # length-sorted within groups of 32 batches, as the training loop pads them
    examples, data = corpus_examples(32 * BATCH, model.cfg.speech_codes)
    timed = batches(examples, BATCH, seed=0, epoch=0)[:n_batches]
    recipe, steps = shipped_run()

    def stepper(model: TinyCosy) -> Callable[[list[Example], dict], None]:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, betas=(0.9, 0.95))

        def step(batch: list[Example], recipe: dict) -> None:
            gen = torch.Generator().manual_seed(0)
            loss = batch_loss(model, batch, gen=gen, **recipe)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return step

    step = stepper(model)

    @torch.no_grad()
    def forward(batch: list[Example]) -> None:
        batch_loss(model, batch)

    bf16 = recipe | {"precision": "bf16"}
    default_bf16 = autocast_bf16(dev, "auto")  # what the training CLI runs in without --precision
    variants = {"recipe_step": lambda: [step(b, recipe) for b in timed],
                "plain_step": lambda: [step(b, {}) for b in timed],
                "forward_only": lambda: [forward(b) for b in timed]}
    if not default_bf16:  # else the recipe step is already bf16
        variants["bf16_step"] = lambda: [step(b, bf16) for b in timed]
    compile_s = None
    if compile:
        compiled = copy.deepcopy(model)
        compiled.compile(dynamic=True)
        compiled_step = stepper(compiled)
        variants["bf16_compiled_step"] = lambda: [compiled_step(b, bf16) for b in timed]
        compile_s = round(_timed(lambda: compiled_step(timed[0], bf16), dev), 1)
    for name, fn in variants.items():  # warm-up (allocator, kernels, autotuning)
        if name != "forward_only":
            fn()
    best: dict[str, float] = {}
    for _ in range(repeats):  # interleaved, so load changes hit every variant alike
        for name, fn in variants.items():
            best[name] = min(best.get(name, float("inf")), _timed(fn, dev) / len(timed))
    flops = 0
    for b in timed:
        with FlopCounterMode(display=False) as counter:
            step(b, recipe)
        flops += counter.get_total_flops() / len(timed)
    lengths = [[1 + len(e.text_ids) + 1 + len(e.prompt) + len(e.target) for e in b]
               for b in timed]
    tokens = round(sum(map(sum, lengths)) / len(timed))
    padded = round(sum(len(x) * max(x) for x in lengths) / len(timed))
    large = {str(dt).removeprefix("torch."): matmul_gflops(2048, 2048, 2048, dev, dt)
             for dt in (torch.float32, torch.bfloat16)}
    default_dtype = torch.bfloat16 if default_bf16 else torch.float32
    shaped = matmul_gflops(padded, model.cfg.hidden, model.cfg.mlp, dev,  # an MLP up-projection
                           default_dtype)
    default_name = str(default_dtype).removeprefix("torch.")
    full_steps = [k for k in best if k.endswith("_step") and k != "plain_step"]  # the recipe's
    fastest = min(full_steps, key=best.get)
    achieved = flops / best["recipe_step"] / 1e9
    budget_h = BUDGET_HOURS[dev.type]
    return {
        "device": str(dev), "threads": torch.get_num_threads(), "data": data,
        "params": sum(p.numel() for p in model.parameters()), "batch": BATCH, "recipe": recipe,
        "tokens_per_step": tokens, "padded_tokens_per_step": padded,
        "seconds_per_step": {k: round(v, 4) for k, v in best.items()},
        "speedup_over_recipe_step": {k: round(best["recipe_step"] / v, 2) for k, v in best.items()
                                     if k.endswith("_step") and k != "recipe_step"},
        "compile_seconds": compile_s,
        "guide_and_noise_cost": round(best["recipe_step"] / best["plain_step"] - 1, 3),
        "backward_and_update_over_forward": round(best["recipe_step"] / best["forward_only"], 2),
        "gflop_per_step": round(flops / 1e9, 1),
        "gflops": {"training_step": round(achieved, 1),
                   **{f"matmul_2048_{k}": round(v, 1) for k, v in large.items()},
                   f"matmul_{padded}x{model.cfg.hidden}x{model.cfg.mlp}_{default_name}":
                       round(shaped, 1)},
        "step_fraction_of_large_matmul": round(achieved / large[default_name], 3),
        "fastest": fastest,
        "lineage_steps": steps,
        "lineage_hours": {k: round(steps * best[k] / 3600, 2) for k in full_steps},
        # however well implemented: every FLOP at the large bf16 matmul's rate
        "lineage_hours_at_large_matmul_rate": round(steps * flops / (large["bfloat16"] * 1e9) / 3600, 2),
        "budget_hours": budget_h,
        "steps_in_budget": int(budget_h * 3600 / best[fastest]),
        "goal": "the default trains in <= 15 min on one H100 or <= 2 h on 2 CPU cores",
    }


def line(r: dict) -> str:
    f = r["fastest"]
    return (f"TinyCosy training on {r['device']} ({r['threads']} threads, {r['data']} batches): "
            f"{r['seconds_per_step']['recipe_step']} s/step as shipped, {r['gflops']['training_step']} "
            f"GFLOP/s = {r['step_fraction_of_large_matmul']:.0%} of a large matmul; fastest {f} "
            f"{r['seconds_per_step'][f]} s/step; the shipped lineage's {r['lineage_steps']:,} steps "
            f"take {r['lineage_hours'][f]} h (floor {r['lineage_hours_at_large_matmul_rate']} h) "
            f"against a {r['budget_hours']} h budget, which holds {r['steps_in_budget']:,} steps")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tinycosy_training",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"),
                        help="results JSON whose tinycosy_training entry is (re)placed")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--batches", type=int, default=4, help="batches of 16 per timed variant")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved repeats; the fastest counts (other jobs share the cores)")
    parser.add_argument("--compile", action="store_true",
                        help="also time bf16 + torch.compile (compiling takes minutes on a CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run(args.batches, args.repeats, args.device, args.compile)
    write_entry(args.out, "tinycosy_training", r)
    print(f"{line(r)} → {args.out}")


if __name__ == "__main__":
    run_cli(main)
