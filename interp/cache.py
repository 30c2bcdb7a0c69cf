"""`python -m interp.cache --layers 12 | 0-23 | 4,12,20`: cache residual streams of the corpus.

Teacher-forced passes of any backbone (`--model`) over (text + prompt speech + target speech) of
one corpus split, several layers in one pass, into a resumable sharded store (see
`interp.store.writer`). Each pass stops after the deepest cached layer (SAELens's
`stop_at_layer`): layer 12 of 24 costs half a forward. `--batch-size` sequences per forward pass (right-padded with an attention
mask, sorted by length inside each shard; 1 = one utterance per pass): the store holds the same
utterances in the same order whatever the batch size. `--dtype bf16` computes the forward in bf16
autocast (fast on CUDA; on a CPU with bf16 units 1.2–1.4× fp32 at batch 2 to 16,
docs/benchmarks.md) and is recorded in the manifest; activations are stored as float16 either
way. From Python: `run_cache(CacheConfig(...))`. Under `torchrun --nproc-per-node N -m
interp.cache …` the shards are split across the ranks.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.audio.tokenize_corpus import MANIFEST as TOKENS_MANIFEST
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import TABLE
from interp.device import check_dtype, pick_device
from interp.hooks.points import HOOK_KINDS
from interp.models.backbone import Backbone
from interp.models.registry import load_backbone
from interp.store.writer import StoreSpec, fingerprint, write_store


def parse_layers(text: str, n_layers: int) -> tuple[int, ...]:
    """"12", "0-23" or "4,12,20" → layer indices, each checked against the model's depth; a range
    that runs backwards (12-4) is refused, not read as no layer at all."""
    spans: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            spans.append((int(lo), int(hi or lo)))
    except ValueError as exc:
        raise ValueError(f"--layers {text!r}: write 12, 0-23 or 4,12,20") from exc
    for first, last in spans:
        if last < first:
            raise ValueError(f"--layers {text!r}: the range {first}-{last} runs backwards; "
                             f"write {last}-{first}")
    out = [layer for first, last in spans for layer in range(first, last + 1)]
    bad = [layer for layer in out if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist: the model has layers 0–{n_layers - 1}")
    return tuple(sorted(set(out)))


def parse_hook_kind(text: str) -> str:
    kind = text if text.startswith("hook_") else f"hook_{text}"
    if kind not in HOOK_KINDS:
        raise ValueError(f"unknown hook {text!r}: use one of "
                         f"{', '.join(k[5:] for k in HOOK_KINDS)}")
    return kind


@dataclass(frozen=True)
class CacheConfig:
    """What to cache, from which model and corpus, into which folder."""

    layers: str = "12"
    """layers: 12, 0-23 or 4,12,20"""
    hook: str = "resid_post"
    """resid_pre | resid_mid | resid_post | attn_out | mlp_out"""
    split: str = "train"
    """corpus split, or several joined by commas (e.g. heldout_sentences,heldout_voices)"""
    max_utts: int = 0
    """the first N utterances of the split (0 = all)"""
    shard_utts: int = 64
    """utterances per shard"""
    model: str = "tinycosy"
    """backbone (`interp.models.registry.load_backbone`): tinycosy, tinyedit, cosyvoice3:<dir>,
    editing-lm:<dir> or a model dir; for tinyedit, --corpus is a pairs folder of
    `python -m interp.edit build` and --tokens its tokens/"""
    corpus: str = "runs/tinycosy/corpus"
    """corpus folder (utterances.parquet)"""
    tokens: str = "runs/tinycosy/tokens"
    """speech tokens of the corpus (made with the model's speech tokenizer when missing)"""
    out: str = "runs/tinycosy/acts"
    """store folder"""
    threads: int = 0
    """CPU threads (0 = all cores)"""
    batch_size: int = 16
    """utterances per forward pass (right-padded; 1 = one at a time); on a GPU 64 or more"""
    dtype: str = "fp32"
    """fp32 | bf16 (forward in bf16 autocast: for CUDA, or a CPU with bf16 units at batch 8 or
    more, ~1.4x fp32 there); the store records it and keeps float16 activations either way"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda[:N]"""


def ensure_tokens(backbone: Backbone, corpus: Path, tokens: Path) -> None:
    """Tokenize the corpus with the backbone's own speech tokenizer when `tokens` has none."""
    if not (tokens / TOKENS_MANIFEST).exists():
        backbone.tokenize_corpus(corpus, tokens)


def run_cache(cfg: CacheConfig, backbone: Backbone | None = None) -> dict:
    """Cache `cfg.layers` of `cfg.split` (resuming a killed run); returns the manifest."""
    check_dtype(cfg.dtype)
    if cfg.batch_size < 1:
        raise ValueError(f"--batch-size {cfg.batch_size}: give 1 or more")
    rank, world, barrier = distributed()  # first: under torchrun each rank takes its own GPU
    backbone = backbone or load_backbone(cfg.model, pick_device(cfg.device))
    layers = parse_layers(cfg.layers, backbone.n_layers)
    hook = parse_hook_kind(cfg.hook)
    corpus, tokens = Path(cfg.corpus), Path(cfg.tokens)
    ensure_tokens(backbone, corpus, tokens)
    triples = backbone.corpus_examples(corpus, tokens, cfg.split.split(","), cfg.max_utts)
    spec = StoreSpec(model=backbone.fingerprint, corpus=fingerprint(corpus / TABLE), hook=hook,
                     layers=layers, d_model=backbone.d_model, split=cfg.split,
                     shard_utts=cfg.shard_utts, dtype=cfg.dtype)
    return write_store(Path(cfg.out), backbone, spec, triples, rank, world, barrier,
                       batch_size=cfg.batch_size)


def distributed():
    """(rank, world size, barrier) under torchrun (gloo, CPU or GPU), else (0, 1, None). With
    CUDA, each rank drives its own GPU (LOCAL_RANK), so "cuda" in a rank means its device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return dist.get_rank(), world, dist.barrier


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.cache", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, CacheConfig)
    cfg = config_from_args(CacheConfig, parser.parse_args())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start = time.time()
    m = run_cache(cfg)
    if int(os.environ.get("RANK", "0")) > 0:
        return
    out = Path(cfg.out)
    mb = sum(f.stat().st_size for f in out.rglob("*.np*")) / 1e6
    print(f"\ncached {m['positions']:,} positions × layers {m['spec']['layers']} "
          f"({m['spec']['hook']}, split {m['spec']['split']}) in {time.time() - start:.0f} s, "
          f"{mb:.1f} MB → {out}")


if __name__ == "__main__":
    run_cli(main)
