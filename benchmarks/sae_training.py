"""SAE training speed and quality: our trainer (`sae.train`) vs EleutherAI sparsify, side by side.

All train on the same in-memory batches, in the same order, of the same cached activations
(scaled to mean norm √d, as `sae.train` does), with the same d_in, d_sae, k, batch size and
token count, each with its own default optimiser and schedule:
- ours: `sae.train`'s SAE (SAELens `BatchTopKTrainingSAE`) and default step engine
  (`sae.engine`: one dense matmul per step, sparse gathers for the rest; Adam, warm-up and
  decay, dead-latent auxiliary loss), driven by the loop `sae.train.fit` runs, without its
  checkpoints and progress bar;
- ours with `--engine saelens`: the same SAE and loop with SAELens's `SAETrainer.step`;
- sparsify: its real `Trainer.fit` (TopK `SparseCoder`, SignSGD + schedule-free, sparse
  decoder) fed through a stand-in model whose hooked layer replays the same batches.
Reported: tokens/s of each training loop (and for ours the achieved TFLOP/s, a fraction of the
bf16 peak on a GPU), and FVU (1 − explained variance), L0 and the never-
firing fraction on a held-out slice (shards the training rows do not come from).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks import write_entry
from interp.cli import add_config_args, config_from_args, run_cli
from interp.device import pick_device
from interp.store import ActivationStore
from interp.store.writer import MANIFEST
from sae.config import SAETrainConfig
from sae.data import eval_rows, sample_rows, split_shards
from sae.engine import SparseTrainer, flops_per_step
from sae.metrics import encode_decode, explained_variance
from sae.train import engine_step, make_sae, make_trainer

STORES = ("runs/tinycosy/acts", "runs/demo/acts")
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


@dataclass(frozen=True)
class SAEBenchConfig:
    """One side-by-side training run."""

    store: str = "auto"
    """activation store ('auto': the first finished one of runs/tinycosy/acts, runs/demo/acts
    holding the layer; synthetic data when there is none)"""
    layer: int = 12
    """layer of the store"""
    d_sae: int = 2048
    """latents"""
    k: int = 16
    """active latents per position"""
    batch_size: int = 1024
    """positions per step"""
    tokens: int = 1_000_000
    """training positions (the steps are tokens / batch_size; ~1,000 steps, a tenth of
    sae.train's default run)"""
    lr: float = 0.0
    """our peak learning rate (0 = sae.train's default for each engine)"""
    eval_rows: int = 20_000
    """held-out positions for FVU"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda"""
    precision: str = "auto"
    """our sparse engine's dense matmul (`sae.train --precision`): fp32, tf32 or bf16; auto =
    bf16 on CUDA, fp32 on a CPU"""
    seed: int = 0
    """seed of data order and initialisation"""
    repeats: int = 2
    """runs of each trainer, interleaved; the fastest counts (other jobs share the cores)"""


QUICK = SAEBenchConfig(d_sae=256, k=8, batch_size=256, tokens=256 * 20, eval_rows=2048,
                       repeats=1)


def _store(cfg: SAEBenchConfig) -> ActivationStore | None:
    """The store to read: --store, or in 'auto' the first finished default store with the layer
    and at least two shards (one is held out); None for synthetic data."""
    if cfg.store != "auto":
        return ActivationStore(cfg.store, cfg.layer)  # a clear error when missing or unfinished
    for folder in STORES:
        path = Path(folder) / MANIFEST
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        if m.get("complete") and cfg.layer in m["spec"]["layers"] and len(m["shards"]) >= 2:
            return ActivationStore(folder, cfg.layer)
    return None


def load_data(cfg: SAEBenchConfig) -> tuple[Tensor, Tensor, str]:
    """(training rows (tokens, d), held-out rows (eval_rows, d), where they come from), both
    scaled by the training rows' √d / mean norm; the training rows repeat when the store has
    fewer, each epoch in a new random order."""
    store = _store(cfg)
    rng = np.random.default_rng(cfg.seed)
    if store is None:
        x, source = _synthetic(cfg.tokens + cfg.eval_rows, rng), "synthetic"
        train, held = x[: cfg.tokens], x[cfg.tokens :]
    else:
        train_shards, eval_shards = split_shards(store, 0.1)
        train = torch.from_numpy(sample_rows(store, train_shards, None, cfg.tokens))
        held = eval_rows(store, eval_shards, cfg.eval_rows, cfg.seed)[0]
        source = f"{store.folder} layer {cfg.layer}"
    order = np.concatenate([rng.permutation(len(train))
                            for _ in range(-(-cfg.tokens // len(train)))])[: cfg.tokens]
    scale = float(np.sqrt(train.shape[1]) / train.norm(dim=1).mean())
    return train[torch.from_numpy(order)] * scale, held * scale, source


def _synthetic(n: int, rng: np.random.Generator, d: int = 128, atoms: int = 1024,
               active: int = 8) -> Tensor:
    """Sparse sums of random unit directions plus noise (no store on this machine)."""
    dirs = rng.standard_normal((atoms, d)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    idx = rng.integers(0, atoms, (n, active))
    coef = rng.exponential(1.0, (n, active)).astype(np.float32)
    x = np.einsum("na,nad->nd", coef, dirs[idx]) + 0.05 * rng.standard_normal((n, d))
    return torch.from_numpy(x.astype(np.float32))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


ENGINES = {"sparse": "ours: sae.train --engine sparse (BatchTopK, one dense matmul, Adam)",
           "saelens": "ours: sae.train --engine saelens (SAELens BatchTopK step, Adam)"}


def run_ours(batches: list[Tensor], held: Tensor, cfg: SAEBenchConfig, device: torch.device,
             engine: str = "sparse") -> dict:
    """`sae.train`'s SAE and step engine on `batches`; tokens/s of the loop, then held-out FVU."""
    tc = SAETrainConfig(engine=engine, d_sae=cfg.d_sae, k=cfg.k, batch_size=cfg.batch_size,
                        lr=cfg.lr if engine == "sparse" else 0.0,
                        tokens=len(batches) * cfg.batch_size, seed=cfg.seed, device=str(device),
                        precision=cfg.precision)
    sae = make_sae(tc, held.shape[1], {"model_name": "benchmark", "hook_name": "benchmark"},
                   device)
    with torch.no_grad():  # as sae.train: b_dec starts at the data mean
        sae.b_dec.copy_(torch.cat(batches[:8]).mean(0))
    trainer = make_trainer(tc, sae, iter(batches), device)
    _sync(device)
    start = time.perf_counter()
    for x in batches:  # the loop of sae.train.fit, less checkpoints and the progress bar
        engine_step(trainer, x)
    _sync(device)
    seconds = time.perf_counter() - start
    if isinstance(trainer, SparseTrainer):
        trainer.sync()
    x_hat, l0, fires = encode_decode(sae, held, cfg.batch_size)
    out = _figures(ENGINES[engine], len(batches) * cfg.batch_size, seconds, held, x_hat, l0,
                   fires)
    if engine == "sparse":
        out["precision"] = trainer.precision
        out["tflops"] = round(len(batches) * flops_per_step(
            cfg.batch_size, held.shape[1], cfg.d_sae, cfg.k) / seconds / 1e12, 4)
    return out


def _figures(trainer: str, tokens: int, seconds: float, held: Tensor, x_hat: Tensor,
             l0: Tensor, fires: Tensor) -> dict:
    return {"trainer": trainer, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "fvu": round(1 - explained_variance(held, x_hat.float().cpu()), 5),
            "l0": round(float(l0.float().mean()), 2),
            "never_fired_frac": round(float((fires == 0).float().mean()), 4)}


class _Replay(nn.Module):
    """A stand-in for sparsify's language model: `input_ids` index a table of activations, and
    the hooked module `layers.0` outputs those rows (B, seq, d)."""

    def __init__(self, table: Tensor):
        super().__init__()
        self.register_buffer("table", table)
        self.layers = nn.ModuleList([nn.Identity()])

    @property
    def base_model(self) -> nn.Module:
        return self

    @property
    def device(self) -> torch.device:
        return self.table.device

    @property
    def dummy_inputs(self) -> dict[str, Tensor]:
        return {"input_ids": torch.zeros(1, 1, dtype=torch.long)}

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.layers[0](self.table[input_ids])  # (B, seq, d)


class _Dense(nn.Module):
    """sparsify's SparseCoder behind the dense encode / decode that `sae.metrics` evaluates."""

    def __init__(self, coder: nn.Module):
        super().__init__()
        self.coder = coder
        self.cfg = SimpleNamespace(d_sae=coder.num_latents)

    def encode(self, x: Tensor) -> Tensor:
        acts, idx, _ = self.coder.encode(x)  # (n, k) each
        return torch.zeros(len(x), self.cfg.d_sae, device=x.device).scatter_(1, idx, acts)

    def decode(self, z: Tensor) -> Tensor:
        return z @ self.coder.W_dec + self.coder.b_dec  # (n, d)


def run_sparsify(batches: list[Tensor], held: Tensor, cfg: SAEBenchConfig,
                 device: torch.device) -> dict:
    """sparsify's `Trainer.fit` on the same batches (a replaying stand-in model); tokens/s of
    the whole fit, then held-out FVU at the schedule-free averaged weights."""
    quiet = contextlib.redirect_stdout(io.StringIO())  # sparsify prints at import and in fit
    try:
        with quiet:
            import sparsify
            from sparsify import SaeConfig, TrainConfig, Trainer
    except ImportError as exc:
        return {"error": f"sparsify is not importable here ({exc}); pip install "
                         "eai-sparsify==1.3.3"}
    seq = int(np.gcd(cfg.batch_size, 64))  # positions per stand-in "sequence"
    table = torch.cat(batches).to(device)
    data = [{"input_ids": torch.arange(i, i + seq)} for i in range(0, len(table), seq)]
    precision = torch.get_float32_matmul_precision()  # fit() sets it to "high"
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        tc = TrainConfig(SaeConfig(num_latents=cfg.d_sae, k=cfg.k),
                         batch_size=cfg.batch_size // seq, hookpoints=["layers.0"],
                         init_seeds=[cfg.seed], log_to_wandb=False, save_every=10**9,
                         save_dir=tmp)
        trainer = Trainer(tc, data, _Replay(table))
        _sync(device)
        start = time.perf_counter()
        trainer.fit()
        _sync(device)
        seconds = time.perf_counter() - start
    torch.set_float32_matmul_precision(precision)
    for opt in trainer.optimizers:
        if hasattr(opt, "eval"):
            opt.eval()  # schedule-free keeps the weights to evaluate apart from the iterate
    x_hat, l0, fires = encode_decode(_Dense(trainer.saes["layers.0"]), held, cfg.batch_size)
    name = f"sparsify {sparsify.__version__} Trainer.fit (TopK, {tc.optimizer})"
    return _figures(name, len(batches) * cfg.batch_size, seconds, held, x_hat, l0, fires)


def run(cfg: SAEBenchConfig = SAEBenchConfig()) -> dict:
    """Both trainers on the same data; their figures and the ratio of their speeds."""
    device = pick_device(cfg.device)
    train, held, source = load_data(cfg)
    batches = list(train.to(device).split(cfg.batch_size))
    batches = [b for b in batches if len(b) == cfg.batch_size]
    if not batches:
        raise ValueError(f"--tokens {cfg.tokens} is less than one batch of {cfg.batch_size}")
    contestants = {"ours": lambda *a: run_ours(*a, engine="sparse"),
                   "ours_saelens_engine": lambda *a: run_ours(*a, engine="saelens"),
                   "sparsify": run_sparsify}
    best: dict[str, dict] = {}
    for _ in range(cfg.repeats):  # interleaved, so load changes hit all alike
        for name, fn in contestants.items():
            r = fn(batches, held, cfg, device)
            if name not in best or r.get("tokens_per_s", 0) > best[name].get("tokens_per_s", 0):
                best[name] = r
    ours, theirs = best["ours"], best["sparsify"]
    out = {"config": asdict(cfg), "data": source, "d_in": int(train.shape[1]),
           "steps": len(batches), "device": str(device), "threads": torch.get_num_threads(),
           "load_average_1min": round(os.getloadavg()[0], 2), **best}
    out["sparse_vs_saelens_engine_tokens_per_s"] = round(
        ours["tokens_per_s"] / best["ours_saelens_engine"]["tokens_per_s"], 3)
    if "error" not in theirs:
        out["ours_vs_sparsify_tokens_per_s"] = round(ours["tokens_per_s"]
                                                     / theirs["tokens_per_s"], 3)
        out["fvu_ours_minus_sparsify"] = round(ours["fvu"] - theirs["fvu"], 5)
    if device.type == "cuda":  # the chip's dense bf16 peak, for the achieved fraction
        peak = BF16_PEAK_TFLOPS.get(torch.cuda.get_device_name().split()[-1])
        if peak:
            out["ours"]["fraction_of_bf16_peak"] = round(ours["tflops"] / peak, 4)
    return out


def line(r: dict) -> str:
    """One line for `python -m benchmarks`."""
    o, s = r["ours"], r["sparsify"]
    theirs = (f"sparsify {s['tokens_per_s']:,.0f} tokens/s, FVU {s['fvu']:.4f}; speed ratio "
              f"ours/sparsify {r['ours_vs_sparsify_tokens_per_s']}" if "error" not in s
              else f"sparsify: {s['error']}")
    e = r["ours_saelens_engine"]
    return (f"SAE training ({r['steps']} steps of {r['config']['batch_size']}, {r['data']}, "
            f"{r['device']}): ours {o['tokens_per_s']:,.0f} tokens/s, FVU {o['fvu']:.4f} "
            f"(SAELens engine {e['tokens_per_s']:,.0f} tokens/s, FVU {e['fvu']:.4f}); {theirs}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sae_training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, SAEBenchConfig)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"),
                        help="results JSON whose sae_training entry is (re)placed")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run(config_from_args(SAEBenchConfig, args))
    write_entry(args.out, "sae_training", r)
    print(f"{line(r)} → {args.out}")


if __name__ == "__main__":
    run_cli(main)
