"""Capture overhead, and batched vs one-utterance-per-forward caching, side by side in one run.

One utterance per forward (as `python -m interp.cache --batch-size 1`), on sequences of the
corpus's typical shape ([sos] 25 text tokens [task_id] 60 prompt + 75 target speech tokens), with
the default TinyCosy size: the bare teacher-forced forward vs forward + capture of 1 and of all
layers. The capture includes the fp16 copy to CPU and the write to disk of `interp.cache`.

Batched (`batched`): utterances of varied lengths (text 15–35, prompt 40–75, target 40–125
tokens, seeded), cached into shards of 64 by the store writer itself (`write_shard`: layer 12,
fp16, to disk) one utterance per forward and `batch_size` per forward (length-sorted inside the
shard, right-padded), and the bare batched forward (`teacher_forced_batch`, no hooks, no disk) over
the same batches: utterances/s of each, the speedup of batching, and the capture overhead at the
same batch (on whole forwards, `batched_full`: `interp.cache` cuts each forward after the deepest
cached layer, as SAELens's `stop_at_layer`; `speedup_stop_early` is what that saves, and
`one_per_forward_full` is one whole forward per utterance, as it cached before). With `--dtype
bf16` every variant computes in bf16 and `one_per_forward_fp32` (the default: one fp32 forward
per utterance) runs beside them (`speedup_vs_one_fp32`): on a CPU with AMX bf16 units a batch is
where bf16 pays.
Goals (issue 35): ≥ 3× at batch 16, overhead ≤ 10%.

`python -m benchmarks.capture [--utts 256] [--batch-size 16] [--device auto] [--dtype fp32]`
runs this benchmark alone and (re)places the `capture` entry of benchmarks/results.json;
`--sweep 1,2,4,8,16` instead times the cache path at each batch size in fp32 and bf16, side by
side (the `capture_batch_sweep` entry).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import write_entry
from interp.cli import run_cli
from interp.device import forward_precision, pick_device
from interp.hooks import capture
from interp.models.data import Example
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from interp.models.tinycosy_backbone import TinyCosyBackbone
from interp.paths import TINYCOSY_DIR
from interp.store.writer import length_batches, write_shard

SHARD_UTTS = 64  # interp.cache's default: batches are length-sorted inside a shard


def _model(device: torch.device | str = "cpu") -> TinyCosyBackbone:
    if (TINYCOSY_DIR / "model.safetensors").exists():
        return TinyCosyBackbone(TinyCosy.load(TINYCOSY_DIR, device))
    return TinyCosyBackbone(TinyCosy(TinyCosyConfig()).to(device).eval())


def _run(bb: TinyCosyBackbone, seqs, names: list[str], folder: Path | None) -> float:
    start = time.perf_counter()
    for i, (text, prompt, target) in enumerate(seqs):
        with torch.no_grad(), capture(bb.model, names, dtype=torch.float16) as cache:
            bb.teacher_forced(text, prompt, target)
        if folder is not None:
            for n, x in cache.items():
                np.save(folder / f"{i}_{n}.npy", x[0].numpy())
    return time.perf_counter() - start


def run(n_seqs: int = 40, repeats: int = 3, n_utts: int = 256, batch_size: int = 16,
        device: str = "cpu", dtype: str = "fp32") -> dict:
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
        "batched": batched(n_utts, batch_size, repeats, device, dtype),
    }


def utterances(n: int, codes: int, seed: int = 0) -> list[tuple[Example, int, int]]:
    """`n` (example, utt index, prompt index) of varied, seeded lengths."""
    gen = torch.Generator().manual_seed(seed)

    def draw(lo: int, hi: int, vocab: int) -> torch.Tensor:
        return torch.randint(0, vocab, (int(torch.randint(lo, hi + 1, (), generator=gen)),),
                             generator=gen)

    return [(Example(f"u{i}", draw(15, 35, 500), draw(40, 75, codes), draw(40, 125, codes)), i, i)
            for i in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cache(bb, shards, layers: tuple[int, ...], batch_size: int, dtype: str,
           folder: Path, stop: bool = True) -> float:
    """Seconds to write `shards` as `interp.cache` does (capture, fp16, to disk; each forward
    cut after the deepest cached layer unless `stop=False`)."""
    start = time.perf_counter()
    for i, shard in enumerate(shards):
        write_shard(folder, i, bb, "hook_resid_post", layers, shard, batch_size, dtype, stop)
    return time.perf_counter() - start


@torch.no_grad()
def _bare(bb, shards, batch_size: int, dtype: str, device: torch.device) -> float:
    """Seconds of the bare batched forwards over the same length-sorted batches, no hooks."""
    start = time.perf_counter()
    for shard in shards:
        seqs = [(ex.text_ids, ex.prompt, ex.target) for ex, _, _ in shard]
        for group in length_batches([sum(len(x) for x in s) for s in seqs], batch_size):
            with forward_precision(device, dtype):
                bb.teacher_forced_batch([seqs[i] for i in group])
    _sync(device)
    return time.perf_counter() - start


def _workload(n_utts: int, device: str):
    """(device, model, the seeded utterances, them in interp.cache's shards): what every
    caching variant runs on."""
    dev = pick_device(device)
    bb = _model(dev)
    exs = utterances(n_utts, bb.model.cfg.speech_codes)
    return dev, bb, exs, [exs[i : i + SHARD_UTTS] for i in range(0, len(exs), SHARD_UTTS)]


def batched(n_utts: int = 256, batch_size: int = 16, repeats: int = 3, device: str = "cpu",
            dtype: str = "fp32") -> dict:
    """Utterances/s cached one per forward and `batch_size` per forward, and the bare batched
    forward; interleaved repeats, the fastest of each counts."""
    dev, bb, exs, shards = _workload(n_utts, device)
    mid, every = (bb.n_layers // 2,), tuple(range(bb.n_layers))
    lengths = [len(e.text_ids) + len(e.prompt) + len(e.target) + 2 for e, _, _ in exs]
    padded = 0  # positions the batched forwards compute, padding included
    for s in range(0, n_utts, SHARD_UTTS):
        shard = lengths[s : s + SHARD_UTTS]
        padded += sum(max(shard[i] for i in g) * len(g) for g in length_batches(shard, batch_size))
    variants = {  # `_full`: the whole forward, as interp.cache ran before it stopped early
        "one_per_forward_full": lambda d: _cache(bb, shards, mid, 1, dtype, d, stop=False),
        "one_per_forward": lambda d: _cache(bb, shards, mid, 1, dtype, d),
        "batched": lambda d: _cache(bb, shards, mid, batch_size, dtype, d),
        "batched_full": lambda d: _cache(bb, shards, mid, batch_size, dtype, d, stop=False),
        "bare_batched": lambda d: _bare(bb, shards, batch_size, dtype, dev),
        "batched_all_layers": lambda d: _cache(bb, shards, every, batch_size, dtype, d),
    }
    if dtype != "fp32":  # the default path, one fp32 forward per utterance, beside it
        variants["one_per_forward_fp32"] = lambda d: _cache(bb, shards, mid, 1, "fp32", d)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        _cache(bb, shards[:1], mid, batch_size, dtype, Path(tmp))  # warm-up
        for _ in range(repeats):  # interleaved, so load changes hit every variant alike
            for name, fn in variants.items():
                best[name] = min(best.get(name, float("inf")), fn(Path(tmp)))
    speedup = best["one_per_forward"] / best["batched"]
    speedup_full = best["one_per_forward_full"] / best["batched"]  # against caching as it was
    overhead = best["batched_full"] / best["bare_batched"] - 1  # same work, hooks and disk added
    return {
        "device": str(dev), "dtype": dtype, "threads": torch.get_num_threads(),
        "utterances": n_utts, "batch_size": batch_size, "shard_utts": SHARD_UTTS,
        "layer": mid[0], "tokens": sum(lengths), "padding_frac": round(1 - sum(lengths) / padded, 4),
        "utts_per_s": {k: round(n_utts / v, 2) for k, v in best.items()},
        "speedup_batched_vs_one": round(speedup, 3),
        "speedup_stop_early": round(best["batched_full"] / best["batched"], 3),
        "speedup_vs_one_full_forward": round(speedup_full, 3),
        "capture_overhead_vs_bare_batched": round(overhead, 4),
        "all_layers_overhead_vs_bare_batched": round(best["batched_all_layers"]
                                                     / best["bare_batched"] - 1, 4),
        "goal": f">= 3x utterances/s at batch {batch_size} (one layer to disk), capture "
                "overhead <= 10% over the bare batched forward",
        "goal_met": bool(speedup >= 3 and overhead <= 0.10),
        "goal_met_vs_one_full_forward": bool(speedup_full >= 3 and overhead <= 0.10),
        **({"speedup_vs_one_fp32": round(best["one_per_forward_fp32"] / best["batched"], 3)}
           if "one_per_forward_fp32" in best else {}),
    }


def batch_sweep(n_utts: int = 256, sizes: tuple[int, ...] = (1, 2, 4, 8, 16),
                dtypes: tuple[str, ...] = ("fp32", "bf16"), repeats: int = 3,
                device: str = "cpu") -> dict:
    """Utterances/s of `interp.cache`'s path (layer 12 to disk) at every batch size × dtype,
    interleaved repeats, the fastest of each: which setting caches fastest on this machine
    (on a CPU a large batch can be slower than a small one: its activations leave the cache)."""
    dev, bb, _, shards = _workload(n_utts, device)
    mid = (bb.n_layers // 2,)
    best: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        _cache(bb, shards[:1], mid, max(sizes), dtypes[0], Path(tmp))  # warm-up
        for _ in range(repeats):
            for dtype in dtypes:
                for size in sizes:
                    t = _cache(bb, shards, mid, size, dtype, Path(tmp))
                    best[(dtype, size)] = min(best.get((dtype, size), float("inf")), t)
    ups = {f"{d}@{b}": round(n_utts / t, 2) for (d, b), t in best.items()}
    fastest = max(ups, key=ups.__getitem__)
    return {"device": str(dev), "threads": torch.get_num_threads(), "utterances": n_utts,
            "utts_per_s": ups, "fastest": fastest,
            "fastest_vs_one_fp32": round(ups[fastest] / ups["fp32@1"], 3)
            if "fp32@1" in ups else None}


def line(r: dict) -> str:
    b = r["batched"]
    return (f"capture: {r['tokens_per_s']} tokens/s; overhead vs bare forward "
            f"{r['overhead_vs_bare']} ({r['threads']} threads); batched caching at "
            f"{b['batch_size']}: {b['utts_per_s']['batched']} vs {b['utts_per_s']['one_per_forward']} "
            f"utterances/s ({b['speedup_batched_vs_one']}×; {b['speedup_vs_one_full_forward']}× "
            f"one whole forward per utterance; stopping after layer {b['layer']} "
            f"{b['speedup_stop_early']}×"
            + (f"; {b['speedup_vs_one_fp32']}× one fp32 forward per utterance"
               if "speedup_vs_one_fp32" in b else "")
            + "), overhead vs bare batched forward "
            f"{b['capture_overhead_vs_bare_batched']:+.1%} on {b['device']} {b['dtype']}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"),
                        help="results JSON whose capture entry is (re)placed")
    parser.add_argument("--seqs", type=int, default=40, help="sequences, one-per-forward part")
    parser.add_argument("--utts", type=int, default=256, help="utterances, batched part")
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per forward")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved repeats; the fastest counts (other jobs share the cores)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu",
                        help="batched part: cpu, cuda or auto (the rest runs on the CPU)")
    parser.add_argument("--dtype", default="fp32", help="batched part: fp32 or bf16")
    parser.add_argument("--sweep", default="",
                        help="instead: interp.cache's utterances/s at these batch sizes (e.g. "
                             "1,2,4,8,16) in fp32 and bf16, side by side; written as the "
                             "capture_batch_sweep entry")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sweep:
        sizes = tuple(int(x) for x in args.sweep.split(","))
        r = batch_sweep(args.utts, sizes, repeats=args.repeats, device=args.device)
        write_entry(args.out, "capture_batch_sweep", r)
        print(f"caching utterances/s by dtype@batch: {r['utts_per_s']}; fastest {r['fastest']} "
              f"({r['fastest_vs_one_fp32']}x one fp32 forward per utterance) → {args.out}")
        return
    r = run(args.seqs, args.repeats, args.utts, args.batch_size, args.device, args.dtype)
    write_entry(args.out, "capture", r)
    print(f"{line(r)} → {args.out}")


if __name__ == "__main__":
    run_cli(main)
