"""Training memory on the CPU: does the process's resident memory stay flat over a run of steps?

A 100-minute bf16 CPU run of TinyCosy slowed from ~0.5 to ~0.8 s/step after step 5,000
(data/tinycosy/budget_2h_bf16.json). This measures the suspect: on the CPU, bf16 autocast uses the
math attention kernel, which materialises (batch, heads, length, length) buffers whose size changes
with every batch's length, and glibc's heap serves such ever-different sizes by growing. Each
variant runs `--steps` optimiser steps of the shipped TinyCosy (plain next-token loss) over the
same batches in its own process (a heap belongs to a process), sampling the resident set size:
- fp32: the default CPU precision (the flash kernel: no length × length buffers);
- bf16: `--precision bf16`;
- bf16_pad64: bf16 with every batch padded to a multiple of 64 positions (`--pad-multiple 64`
  of the training CLI: few distinct sizes);
- bf16_jemalloc: bf16 with jemalloc preloaded, when libjemalloc.so.2 is installed
  (Debian: libjemalloc2).
Batches are TinyEdit's edit pairs with `--pairs` (source and target speech: longer, and of more
varied lengths), else the corpus's when `runs/tinycosy/corpus` and its tokens are there, else
synthetic ones of its typical shape. Figures: RSS at the first and last sample, growth per 100
steps over the second half, and seconds per step over each half.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import write_entry
from benchmarks.tinycosy_training import corpus_examples
from interp.cli import run_cli
from interp.models.loss import batch_loss
from interp.models.tinycosy import TinyCosy
from interp.models.train import batches
from interp.paths import TINYCOSY_DIR

JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
VARIANTS = ("fp32", "bf16", "bf16_pad64", "bf16_jemalloc")


def rss_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _pair_examples(pairs: Path, n: int) -> list:
    """The first `n` training examples of an edit-pairs folder, as `interp.edit train` makes them."""
    from interp.audio.tokenize_corpus import load_tokens
    from interp.edit.build import TOKENS, load_pairs
    from interp.edit.data import make_edit_examples
    from interp.models.text_tokenizer import load_tokenizer

    train = [p for p in load_pairs(pairs) if p["split"] == "train"][:n]
    return make_edit_examples(train, load_tokens(pairs / TOKENS), load_tokenizer(TINYCOSY_DIR),
                              0.2, 0)


def child(variant: str, steps: int, n_examples: int, threads: int,
          pairs: Path | None = None) -> dict:
    """Run `steps` steps of one variant in this process; RSS every tenth of the run."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TinyCosy.load(TINYCOSY_DIR, torch.device("cpu"))
    examples, data = ((_pair_examples(pairs, n_examples), str(pairs)) if pairs
                      else corpus_examples(n_examples, model.cfg.speech_codes))
    precision = "fp32" if variant == "fp32" else "bf16"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = batches(examples, 16, 0, 0)
    model.train()
    every = max(1, steps // 10)
    samples, times = [], []
    for i in range(steps):
        t = time.perf_counter()
        loss = batch_loss(model, order[i % len(order)], precision=precision,
                          pad_multiple=64 if variant == "bf16_pad64" else 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        if i % every == 0 or i == steps - 1:
            samples.append({"step": i + 1, "rss_gb": round(rss_gb(), 3)})
    half = steps // 2
    late = [s for s in samples if s["step"] > half]
    growth = ((late[-1]["rss_gb"] - late[0]["rss_gb"]) / max(1, late[-1]["step"] - late[0]["step"])
              * 100 if len(late) > 1 else 0.0)
    return {"data": data, "rss_gb": samples, "rss_growth_gb_per_100_steps": round(growth, 3),
            "seconds_per_step": {"first_half": round(sum(times[:half]) / max(1, half), 3),
                                 "second_half": round(sum(times[half:]) / (steps - half), 3)}}


def run(steps: int = 300, n_examples: int = 2000, threads: int = 2,
        pairs: Path | None = None) -> dict:
    out: dict = {"steps": steps, "threads": threads, "variants": {}}
    for v in VARIANTS:
        env = dict(os.environ)
        if v == "bf16_jemalloc":
            if not JEMALLOC.exists():
                continue
            env["LD_PRELOAD"] = str(JEMALLOC)
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.training_memory", "--child", v, "--steps",
             str(steps), "--examples", str(n_examples), "--threads", str(threads)]
            + (["--pairs", str(pairs)] if pairs else []),
            env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"variant {v} failed: {proc.stderr.strip().splitlines()[-1:]}")
        out["variants"][v] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["data"] = next(iter(out["variants"].values()))["data"]
    return out


def line(r: dict) -> str:
    parts = [f"{v} {d['rss_gb'][0]['rss_gb']:.1f}→{d['rss_gb'][-1]['rss_gb']:.1f} GB "
             f"(+{d['rss_growth_gb_per_100_steps']:.2f}/100 steps, "
             f"{d['seconds_per_step']['first_half']}→{d['seconds_per_step']['second_half']} s/step)"
             for v, d in r["variants"].items()]
    return f"TinyCosy training RSS over {r['steps']} steps ({r['data']} batches): " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_memory",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"),
                        help="results JSON whose training_memory entry is (re)placed")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per variant")
    parser.add_argument("--examples", type=int, default=2000, help="distinct training examples")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="train on these TinyEdit edit pairs (python -m interp.edit build)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per variant")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one variant, in its own process; the parent reads the last line
        print(json.dumps(child(args.child, args.steps, args.examples, args.threads, args.pairs)))
        return
    r = run(args.steps, args.examples, args.threads, args.pairs)
    key = "training_memory_edit_pairs" if args.pairs else "training_memory"
    write_entry(args.out, key, r)
    print(f"{line(r)} → {args.out}")


if __name__ == "__main__":
    run_cli(main)
