"""`python -m interp.models.train`: train TinyCosy on the corpus's speech tokens.

Next-speech-token loss over the target speech (and its eos), AdamW with warm-up and cosine decay,
bf16 autocast on CUDA (and on the CPU with `--precision bf16`), optionally `--compile`d.
Checkpoints every `ckpt_every` steps and on Ctrl-C; running the same command again resumes. At
the end the model, tokenizer and prompt bank are exported to `--export`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from interp.atomic import atomic_save
from interp.audio.tokenize_corpus import load_token_manifest, load_tokens
from interp.cli import StageInterrupted, add_config_args, config_from_args, run_cli, stop_requests
from interp.corpus.table import load_table
from interp.device import pick_device
from interp.models.data import Example, make_examples
from interp.models.loss import autocast_bf16, batch_loss, heldout_loss
from interp.models.phonemes import frontend_of, train_phoneme_tokenizer
from interp.models.prompts import write_prompt_bank
from interp.models.text_tokenizer import FILE as TOKENIZER_FILE
from interp.models.text_tokenizer import (
    SPECIAL_TOKENS,
    SYSTEM_PROMPT,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from interp.models.tinycosy_backbone import write_codec_pointer


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation, schedule and checkpointing of `fit`, the loop TinyCosy and TinyEdit share."""

    steps: int = 3000
    """optimiser steps"""
    batch_size: int = 16
    """sequences per step"""
    lr: float = 1.5e-3
    """peak learning rate"""
    warmup: int = 150
    """warm-up steps"""
    min_lr_frac: float = 0.1
    """final learning rate as a fraction of the peak"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    max_minutes: float = 0.0
    """stop (and export) after this many minutes of this run; 0 = no limit"""
    eval_every: int = 500
    """steps between held-out evaluations"""
    eval_examples: int = 200
    """held-out examples per evaluated split"""
    ckpt_every: int = 100
    """steps between checkpoints"""
    seed: int = 0
    """seed of initialisation and data order"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda"""
    threads: int = 0
    """CPU threads (0 = all cores; 1 is faster when other jobs share the cores)"""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on the CPU), bf16 (autocast on either: on a CPU with
    AVX-512 BF16 or AMX its matmuls run ~4x faster; `python -m benchmarks.tinycosy_training`) or
    fp32. Weights, optimiser and loss stay fp32"""
    pad_multiple: int = 0
    """pad every batch's length up to a multiple of this (e.g. 64; 0 = to its longest example).
    Padded positions are masked and change no loss; what it changes is the number of distinct
    tensor sizes: in bf16 on the CPU, attention's length × length buffers of ever-new sizes grow
    glibc's heap step after step (`python -m benchmarks.training_memory`)"""
    compile: bool = False
    """torch.compile the model's forward (dynamic shapes): the first steps compile, 1–4 minutes
    on 2 CPU cores (inductor caches what an earlier run compiled) and again on every (re)start;
    steps are then ~1.5x faster on the CPU"""
    speech_noise: float = 0.0
    """fraction of the target speech tokens replaced by random codes in the model's input (never
    in the labels), so that the model cannot lean on the speech so far and must read its text"""
    attn_guide: float = 0.0
    """weight of a guided-attention loss: head --attn-guide-head of layer --attn-guide-layer is
    asked to put its attention, at each target speech position, on the text tokens of the word
    being spoken there (the corpus's word timings): −log of that mass. A pointer into the text,
    which no head of the unguided model keeps (`python -m interp.models.alignment`). 0 = off;
    the training loss shown includes it, the held-out losses do not"""
    attn_guide_layer: int = 10
    """layer of the guided head"""
    attn_guide_head: int = 0
    """the guided head"""


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """Training run of TinyCosy."""

    corpus: str = "runs/tinycosy/corpus"
    """corpus folder (utterances.parquet)"""
    tokens: str = "runs/tinycosy/tokens"
    """speech tokens of the corpus (python -m interp.audio tokenize)"""
    out: str = "runs/tinycosy/model"
    """run folder: checkpoint, log"""
    export: str = "data/tinycosy"
    """where the finished model, tokenizer and prompt bank are written"""
    text_vocab: int = 1024
    """text tokenizer vocabulary (trained on first run; BPE only)"""
    grammar_first_steps: int = 0
    """a curriculum for a corpus with open-domain sentences (`interp.corpus build --open-frac`):
    its grammar sentences alone for the first N steps (short, a small vocabulary: the model
    learns to align there first), then every sentence. 0 = every sentence from the first step
    (data/tinycosy/open_curriculum_2h.json, phonemes: 4,000 of 5,661 steps, grammar WER 0.79
    against 0.93 without it; open_bpe_curriculum_2h.json, BPE: 6,000 of 8,797, grammar 0.43,
    open 0.95 against the shipped model's 1.11)"""
    grammar_first_frac: float = 0.0
    """the same curriculum, switched when training is this far through its schedule (the share
    of --steps or of --max-minutes, whichever is further, as the learning rate's decay reads
    it) instead of at a step count: a slower machine, which does fewer steps in the same
    minutes, keeps the same split. 0.64 is where 6,000 steps fell in the 100 minutes of
    open_bpe_curriculum_2h.json (63.8 min); --grammar-first-steps wins when both are given"""
    text_frontend: str = ""
    """bpe (byte-level BPE over the text) or phonemes (espeak-ng phonemes, one token each;
    `interp.models.phonemes`); empty = --init-from's, else bpe. Continuing a model with another
    front end keeps all its weights but the text embedding, which starts afresh"""
    n_layers: int = 24
    """decoder layers"""
    hidden: int = 128
    """residual width"""
    init_from: str = ""
    """continue from this exported model folder (its weights, architecture and tokenizer) with a
    fresh optimiser and schedule; its train.json is kept under `continued_from`"""


def _progress(step: int, cfg: LoopConfig, elapsed_s: float = 0.0, start_t: float = 0.0) -> float:
    """How far through the cosine decay a step is (0..1): by steps, or by this run's minutes when
    `max_minutes` would run out first (continuing from `start_t`, where a resumed run's schedule
    stood), so a run stopped by its time budget still ends annealed and a resume never jumps back."""
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_minutes:
        t = max(t, start_t + (1 - start_t) * elapsed_s / (cfg.max_minutes * 60))
    return min(max(t, start_t, 0.0), 1.0)


def _lr(step: int, cfg: LoopConfig, progress: float) -> float:
    """Warm-up, then cosine decay to `min_lr_frac` at `progress` (from `_progress`)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    decay = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * decay)


def batches(examples: list[Example], bs: int, seed: int, epoch: int) -> list[list[Example]]:
    """Shuffled batches of similar lengths (sorted within groups of 32 batches)."""
    order = list(range(len(examples)))
    random.Random(seed * 1000 + epoch).shuffle(order)
    group = 32 * bs
    out = []
    for g in range(0, len(order), group):
        chunk = sorted(order[g : g + group], key=lambda i: len(examples[i].target))
        out += [[examples[i] for i in chunk[b : b + bs]] for b in range(0, len(chunk), bs)]
    random.Random(seed * 1000 + epoch + 1).shuffle(out)
    return out


def _frontend(cfg: TrainConfig) -> str:
    """The run's text front end: the flag's, else --init-from's, else bpe."""
    if cfg.text_frontend not in ("", "bpe", "phonemes"):
        raise ValueError(f"--text-frontend {cfg.text_frontend!r}: give bpe or phonemes")
    return cfg.text_frontend or (frontend_of(cfg.init_from) if cfg.init_from else "bpe")


def _tokenizer(cfg: TrainConfig, rows: list[dict]):
    out = Path(cfg.out)
    frontend = _frontend(cfg)
    same = cfg.init_from and frontend == frontend_of(cfg.init_from)
    if same and not (out / TOKENIZER_FILE).exists():
        # The continued model's text embedding is indexed by its own tokenizer: reuse it.
        save_tokenizer(load_tokenizer(cfg.init_from), out)
    if not (out / TOKENIZER_FILE).exists():
        texts = [r["text"] for r in rows] + [r["instruction"] or "" for r in rows]
        if frontend == "phonemes":
            tok = train_phoneme_tokenizer(texts + [SYSTEM_PROMPT], SPECIAL_TOKENS)
        else:
            tok = train_tokenizer(texts + [SYSTEM_PROMPT] * 100, cfg.text_vocab)
        save_tokenizer(tok, out)
    return load_tokenizer(out)


def _save_ckpt(path: Path, model, opt, step: int, log: list, progress: float = 0.0,
               switched_at: int | None = None) -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log,
             "progress": progress, "switched_at": switched_at}
    atomic_save(path, lambda p: torch.save(state, p))


def fit(model: TinyCosy, train_ex: list[Example], held: dict[str, list[Example]],
        cfg: LoopConfig, first: tuple[list[Example], int, float] | None = None
        ) -> tuple[int, list[dict], float]:
    """The training loop, shared by TinyCosy and TinyEdit: AdamW with warm-up and cosine decay
    over `train_ex`, held-out losses every `eval_every` steps, checkpoints in `cfg.out/ckpt.pt`
    (resumed from when present). `first` = (examples, steps, frac): a curriculum, those examples
    alone for the first `steps` steps (or, with steps 0, until the schedule's progress reaches
    `frac`), then `train_ex` (epochs counted from the switch, which the log records).
    Returns (steps done, log, start time of this run)."""
    if not 0 <= cfg.speech_noise < 1:
        raise ValueError(f"--speech-noise {cfg.speech_noise}: give a fraction in [0, 1), e.g. 0.15")
    if cfg.pad_multiple < 0:
        raise ValueError(f"--pad-multiple {cfg.pad_multiple}: give 0 (off) or a positive "
                         "multiple, e.g. 64")
    if cfg.attn_guide and not (0 <= cfg.attn_guide_layer < len(model.layers)
                               and 0 <= cfg.attn_guide_head < model.cfg.n_heads):
        raise ValueError(f"--attn-guide-layer {cfg.attn_guide_layer} --attn-guide-head "
                         f"{cfg.attn_guide_head}: this model has layers 0 to "
                         f"{len(model.layers) - 1} and heads 0 to {model.cfg.n_heads - 1}")
    if cfg.attn_guide and any(ex.spoken_span is None for ex in train_ex):
        raise ValueError("--attn-guide needs the corpus's word timings, which these examples "
                         "(TinyEdit's pairs) do not have; drop --attn-guide")
    device = model.speech_embedding.weight.device
    autocast_bf16(device, cfg.precision)  # a bad --precision fails before any work
    if cfg.compile:
        model.compile(dynamic=True)  # in place: state-dict keys, hooks and checkpoints unchanged
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "ckpt.pt"
    step, log, start_t = 0, [], 0.0
    warm_ex, warm_steps, warm_frac = first if first and first[0] else ([], 0, 0.0)
    switched_at = warm_steps or None  # the first step on every example (None: not yet known)
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, log, start_t = state["step"], state["log"], state.get("progress", 0.0)
        switched_at = warm_steps or state.get("switched_at")
    progress = start_t
    n_params = sum(p.numel() for p in model.parameters())
    start = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {n_params / 1e6:.1f}M", unit="step")
    model.train()
    order: dict[tuple[bool, int], list[list[Example]]] = {}  # batches of the current epoch
    # Wall seconds per training step between evaluations (theirs excluded), minutes since this run
    # started and the process's peak memory, in the log: a run's speed and memory over its length,
    # e.g. to see a compiled run fall back to eager or a heap grow.
    window_t, window_step = time.time(), step
    signals = ExitStack()
    stop = signals.enter_context(stop_requests())  # SIGINT/SIGTERM: end the step, save, stop
    try:
        while step < cfg.steps:
            if cfg.max_minutes and time.time() - start > cfg.max_minutes * 60:
                break
            progress = _progress(step, cfg, time.time() - start, start_t)
            if switched_at is None and warm_ex and progress >= warm_frac:
                switched_at = step
                bar.write(f"step {step}: every example from here (progress {progress:.3f})")
            warm = bool(warm_ex) and (switched_at is None or step < switched_at)
            pool = warm_ex if warm else train_ex
            epoch, i = divmod(step - (0 if warm else switched_at or 0),
                              math.ceil(len(pool) / cfg.batch_size))
            if (warm, epoch) not in order:
                order = {(warm, epoch): batches(pool, cfg.batch_size, cfg.seed + warm, epoch)}
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg, progress)
            # Seeded by step, so a resumed run corrupts the same positions as an unbroken one.
            gen = (torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
                   if cfg.speech_noise else None)
            loss = batch_loss(model, order[warm, epoch][i], cfg.speech_noise, gen, cfg.attn_guide,
                              cfg.attn_guide_layer, cfg.attn_guide_head, cfg.precision,
                              cfg.pad_multiple)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            log.append({"step": step, "loss": round(loss.item(), 4)})
            if warm_ex and step - 1 == switched_at:
                log[-1]["curriculum"] = "first step on every example"
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch)
            bar.update(1)
            if step % cfg.eval_every == 0:
                log[-1]["s_per_step"] = round((time.time() - window_t) / (step - window_step), 3)
                log[-1]["minutes"] = round((time.time() - start) / 60, 1)
                log[-1]["peak_rss_gib"] = _peak_rss_gib()
                log[-1].update({s: round(heldout_loss(model, e, cfg.batch_size, cfg.precision), 4)
                                for s, e in held.items()})
                bar.write(f"step {step}: " + json.dumps(log[-1]))
                window_t, window_step = time.time(), step
            if stop.requested and step < cfg.steps:
                raise StageInterrupted(f"checkpoint at step {step} of {cfg.steps} kept in "
                                       f"{ckpt}; run the same command again to resume")
            if step % cfg.ckpt_every == 0:
                _save_ckpt(ckpt, model, opt, step, log, progress, switched_at)
    finally:
        signals.close()
        bar.close()
        _save_ckpt(ckpt, model, opt, step, log, progress, switched_at)  # also on the way out
    return step, log, start


def _peak_rss_gib() -> float:
    """This process's peak resident memory so far, in GiB (Linux reports KiB, macOS bytes)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (2**30 if sys.platform == "darwin" else 2**20), 2)


def run_summary(model: TinyCosy, train_ex: list[Example], held: dict[str, list[Example]],
                cfg, step: int, log: list[dict], start: float) -> dict:
    """What `train.json` records of a finished (or stopped) run."""
    per_epoch = math.ceil(len(train_ex) / cfg.batch_size)
    # in the device's default precision, whatever the run's, so that runs compare
    final = {s: round(heldout_loss(model, e, cfg.batch_size), 4) for s, e in held.items()}
    return {"steps": step, "params": sum(p.numel() for p in model.parameters()),
            "train_examples": len(train_ex), "epochs": round(step / per_epoch, 2),
            "heldout_loss": final, "last_train_loss": log[-1]["loss"] if log else None,
            "minutes_this_run": round((time.time() - start) / 60, 1),
            # every held-out evaluation's record (train.json's log keeps only the last steps)
            "heldout_loss_by_step": [r for r in log if set(held) <= r.keys()],
            # a curriculum's switch: how many steps saw its first examples alone
            "curriculum_steps": next((r["step"] - 1 for r in log if "curriculum" in r), None),
            "device": str(model.speech_embedding.weight.device), "config": asdict(cfg),
            "model": model.cfg.to_dict()}


def _previous_runs(init_from: str) -> dict | None:
    """The train.json of the model a run continues from (minus its loss log), so an export records
    every stage that made it."""
    path = Path(init_from) / "train.json" if init_from else None
    if path is None or not path.exists():
        return None
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "log"}


def train(cfg: TrainConfig, model_cfg: TinyCosyConfig | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    rows = load_table(cfg.corpus)
    tokens = load_tokens(cfg.tokens)
    tokenizer = _tokenizer(cfg, rows)
    split = {s: [r for r in rows if r["split"] == s] for s in
             ("train", "heldout_sentences", "heldout_voices")}
    train_ex = make_examples(split["train"], tokens, tokenizer, seed=cfg.seed, prompt_rows=rows)
    held = {s: make_examples(split[s], tokens, tokenizer, drop_prompt_text=0.0,
                             prompt_rows=rows)[: cfg.eval_examples]
            for s in ("heldout_sentences", "heldout_voices")}
    n_codes = load_token_manifest(cfg.tokens)["n_codes"]
    model_cfg = model_cfg or TinyCosyConfig(n_layers=cfg.n_layers, hidden=cfg.hidden,
                                            mlp=4 * cfg.hidden,
                                            text_vocab=tokenizer.get_vocab_size(),
                                            speech_codes=n_codes)
    if cfg.init_from:  # its architecture wins over the size flags (a checkpoint in out/ wins over it)
        model = TinyCosy.load(cfg.init_from, device=device)
        if model.cfg.speech_codes != n_codes:
            raise ValueError(f"--init-from {cfg.init_from} has {model.cfg.speech_codes} speech codes "
                             f"but --tokens {cfg.tokens} has {n_codes}: tokenize with its codec")
        if _frontend(cfg) != frontend_of(cfg.init_from):
            model = model.with_text_vocab(tokenizer.get_vocab_size())
    else:
        model = TinyCosy(model_cfg).to(device)
    previous = _previous_runs(cfg.init_from)
    first = None
    if not 0 <= cfg.grammar_first_frac < 1:
        raise ValueError(f"--grammar-first-frac {cfg.grammar_first_frac}: give a share of the "
                         "schedule in [0, 1), e.g. 0.64")
    if cfg.grammar_first_steps or cfg.grammar_first_frac:
        flag = "--grammar-first-steps" if cfg.grammar_first_steps else "--grammar-first-frac"
        grammar = {r["utt_id"] for r in split["train"] if r.get("domain", "grammar") == "grammar"}
        first = ([ex for ex in train_ex if ex.utt_id in grammar], cfg.grammar_first_steps,
                 cfg.grammar_first_frac)
        if not first[0]:
            raise ValueError(f"{flag}: {cfg.corpus} has no grammar sentences")
    step, log, start = fit(model, train_ex, held, cfg, first)
    summary = run_summary(model, train_ex, held, cfg, step, log, start)
    if previous:
        summary["continued_from"] = previous
    export = Path(cfg.export)
    model.cpu().save(export)
    save_tokenizer(tokenizer, export)
    write_prompt_bank(rows, tokens, export)
    write_codec_pointer(export, Path(load_token_manifest(cfg.tokens)["codec_dir"]))
    (export / "train.json").write_text(json.dumps(summary | {"log": log[-50:]}, indent=1))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.models.train", description=__doc__)
    add_config_args(parser, TrainConfig)
    cfg = config_from_args(TrainConfig, parser.parse_args())
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    s = train(cfg)
    print(f"\nTinyCosy ({s['params'] / 1e6:.1f}M params): {s['steps']} steps, {s['epochs']} epochs "
          f"on {s['device']}; held-out loss {s['heldout_loss']} (uniform: "
          f"{math.log(s['model']['speech_codes']):.2f}) → {cfg.export}")


if __name__ == "__main__":
    run_cli(main)
