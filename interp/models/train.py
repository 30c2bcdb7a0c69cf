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
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from interp.atomic import atomic_save
from interp.audio.tokenize_corpus import load_token_manifest, load_tokens
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import load_table
from interp.device import pick_device
from interp.hooks.capture import attach
from interp.models.alignment import attention_inputs, guide_loss
from interp.models.data import Example, crop_rows, make_examples
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
    align_loss: float = 0.0
    """weight of an auxiliary loss: at each target speech position, the residual stream
    blocks.<--align-layer>.hook_resid_post predicts, through the (tied) text embedding, the text
    token of the word being spoken there (the corpus's word timings); 0 = off. Adds no weights;
    the training loss shown includes it, the held-out losses do not"""
    align_layer: int = 8
    """layer whose residual the --align-loss reads (below the layer-12 SAE, so that what it
    plants is not read back as a discovery there)"""
    self_feed: float = 0.0
    """fraction of the target speech tokens whose input copy is replaced by the model's own
    prediction there (sampled, from a first no-grad pass given the true past; labels stay clean):
    parallel scheduled sampling, so that the model learns to continue from its own output, not only
    from the reference's. 0 = off"""
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
    text_frontend: str = ""
    """bpe (byte-level BPE over the text) or phonemes (espeak-ng phonemes, one token each;
    `interp.models.phonemes`); empty = --init-from's, else bpe. Continuing a model with another
    front end keeps all its weights but the text embedding, which starts afresh"""
    n_layers: int = 24
    """decoder layers"""
    hidden: int = 128
    """residual width"""
    word_crops: float = 0.0
    """extra training examples per training utterance that speak a random run of its words (cut
    at the corpus's word timings), e.g. 0.5; 0 = off. They have no template to lean on, only
    their text (`interp.models.data.crop_rows`)"""
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


def corrupt(target: torch.Tensor, frac: float, n_codes: int, gen: torch.Generator) -> torch.Tensor:
    """`target` with a random `frac` of its tokens replaced by uniformly drawn codes."""
    flip = torch.rand(target.shape, generator=gen) < frac
    return torch.where(flip, torch.randint(0, n_codes, target.shape, generator=gen), target)


PRECISIONS = ("auto", "bf16", "fp32")


def autocast_bf16(device: torch.device, precision: str) -> bool:
    """Whether a training pass runs in bf16 autocast (`LoopConfig.precision`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: give one of {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def _forward(model: TinyCosy, embeds: torch.Tensor, mask: torch.Tensor,
             precision: str = "auto") -> torch.Tensor:
    """Speech logits of a padded batch, in bf16 autocast where `precision` says so."""
    dev = embeds.device
    bf16 = autocast_bf16(dev, precision)
    # On the CPU, the flash kernel's bf16 backward is slower than its fp32 one (2x at these
    # lengths); the math kernel, whose matmuls then run in bf16, is the fastest.
    kernel = sdpa_kernel(SDPBackend.MATH) if bf16 and dev.type == "cpu" else nullcontext()
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16), kernel:
        return model(embeds, attention_mask=mask)[0]


def _embed(model: TinyCosy, batch: list[Example], inputs: list[torch.Tensor],
           pad_multiple: int = 0):
    """(B, T, D) padded embeddings of [sos] text [task_id] prompt + `inputs` (the input copies of
    the targets), their attention mask, and where each example's predictions start. T is the
    longest sequence, rounded up to a multiple of `pad_multiple` when that is given."""
    dev = model.speech_embedding.weight.device
    seqs, starts = [], []
    for ex, inp in zip(batch, inputs, strict=True):
        pre = model.prefix(ex.text_ids, ex.prompt)
        seqs.append(torch.cat([pre, model.speech_embedding(inp.to(dev))]))
        starts.append(len(pre) - 1)
    lengths = torch.tensor([len(s) for s in seqs], device=dev)
    embeds = pad_sequence(seqs, batch_first=True)
    if pad_multiple > 1:
        embeds = torch.nn.functional.pad(embeds, (0, 0, 0, -embeds.shape[1] % pad_multiple))
    mask = (torch.arange(embeds.shape[1], device=dev)[None] < lengths[:, None]).long()
    return embeds, mask, starts


@torch.no_grad()
def self_fed(model: TinyCosy, batch: list[Example], frac: float,
             gen: torch.Generator, precision: str = "auto",
             pad_multiple: int = 0) -> list[torch.Tensor]:
    """Each target with a random `frac` of its tokens replaced by what the model samples at that
    frame given the true past (one teacher-forced pass): the input of parallel scheduled sampling."""
    embeds, mask, starts = _embed(model, batch, [ex.target for ex in batch], pad_multiple)
    logits = _forward(model, embeds, mask, precision)
    out = []
    for b, (ex, s) in enumerate(zip(batch, starts, strict=True)):
        probs = logits[b, s : s + len(ex.target), : model.cfg.speech_codes].float().softmax(-1)
        own = torch.multinomial(probs.cpu(), 1, generator=gen)[:, 0]
        flip = torch.rand(ex.target.shape, generator=gen) < frac
        out.append(torch.where(flip, own, ex.target))
    return out


def batch_loss(model: TinyCosy, batch: list[Example], speech_noise: float = 0.0,
               gen: torch.Generator | None = None, align_loss: float = 0.0,
               align_layer: int = 8, self_feed: float = 0.0, attn_guide: float = 0.0,
               attn_guide_layer: int = 10, attn_guide_head: int = 0,
               precision: str = "auto", pad_multiple: int = 0) -> torch.Tensor:
    """Mean next-token cross-entropy over target speech tokens and eos. The labels are always the
    clean targets; their input copy may be changed: with `self_feed`, a fraction replaced by the
    model's own predictions (`self_fed`), then with `speech_noise`, a fraction by random codes
    (`corrupt`). With `align_loss`, plus that weight times the word-alignment loss
    (`LoopConfig.align_loss`); with `attn_guide`, plus that weight times the guided-attention loss
    (`LoopConfig.attn_guide`, `interp.models.alignment.guide_loss`). `precision` and
    `pad_multiple` as `LoopConfig`'s."""
    dev = model.speech_embedding.weight.device
    gen = gen or torch.Generator()
    inputs = (self_fed(model, batch, self_feed, gen, precision, pad_multiple) if self_feed
              else [ex.target for ex in batch])
    if speech_noise:
        inputs = [corrupt(x, speech_noise, model.cfg.speech_codes, gen) for x in inputs]
    embeds, mask, starts = _embed(model, batch, inputs, pad_multiple)
    labels = [torch.cat([ex.target, torch.tensor([model.eos])]).to(dev) for ex in batch]
    hidden: list[torch.Tensor] = []  # blocks.<align_layer>.hook_resid_post, gradients kept
    handles = attach(model.layers[align_layer], "hook_resid_post", hidden.append) \
        if align_loss else []
    guided = [attn_guide_layer] if attn_guide else []
    try:
        with attention_inputs(model, guided) as seen:
            logits = _forward(model, embeds, mask, precision)
    finally:
        for h in handles:
            h.remove()
    picked = torch.cat([logits[b, s : s + len(y)] for b, (s, y) in enumerate(zip(starts, labels,
                                                                                  strict=True))])
    loss = torch.nn.functional.cross_entropy(picked.float(), torch.cat(labels))
    if attn_guide:
        loss = loss + attn_guide * guide_loss(model, seen[attn_guide_layer], mask, starts, batch,
                                              attn_guide_layer, attn_guide_head)
    if not align_loss:
        return loss
    # Position s + j predicts target frame j: it is asked which word frame j belongs to.
    words = [(b, s, ex.spoken) for b, (s, ex) in enumerate(zip(starts, batch, strict=True))
             if ex.spoken is not None]
    if not words:
        raise ValueError("--align-loss needs word timings: these examples have none")
    h = torch.cat([hidden[0][b, s : s + len(w)] for b, s, w in words]).float()
    h = torch.nn.functional.rms_norm(h, h.shape[-1:])  # the raw residual's scale grows with depth
    text_logits = torch.nn.functional.linear(h, model.llm.model.model.embed_tokens.weight.float())
    return loss + align_loss * torch.nn.functional.cross_entropy(
        text_logits, torch.cat([w for _, _, w in words]).to(dev), ignore_index=-100)


@torch.no_grad()
def evaluate(model: TinyCosy, examples: list[Example], bs: int, precision: str = "auto") -> float:
    model.eval()
    total, n = 0.0, 0
    # eagerly even when --compile'd: compiling the no-grad graph would take minutes for seconds
    with torch.compiler.set_stance("force_eager"):
        for i in range(0, len(examples), bs):
            batch = examples[i : i + bs]
            k = sum(len(e.target) + 1 for e in batch)
            total += batch_loss(model, batch, precision=precision).item() * k
            n += k
    model.train()
    return total / max(n, 1)


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


def _save_ckpt(path: Path, model, opt, step: int, log: list, progress: float = 0.0) -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log,
             "progress": progress}
    atomic_save(path, lambda p: torch.save(state, p))


def fit(model: TinyCosy, train_ex: list[Example], held: dict[str, list[Example]],
        cfg: LoopConfig) -> tuple[int, list[dict], float]:
    """The training loop, shared by TinyCosy and TinyEdit: AdamW with warm-up and cosine decay
    over `train_ex`, held-out losses every `eval_every` steps, checkpoints in `cfg.out/ckpt.pt`
    (resumed from when present).
    Returns (steps done, log, start time of this run)."""
    if not 0 <= cfg.speech_noise < 1:
        raise ValueError(f"--speech-noise {cfg.speech_noise}: give a fraction in [0, 1), e.g. 0.15")
    if cfg.pad_multiple < 0:
        raise ValueError(f"--pad-multiple {cfg.pad_multiple}: give 0 (off) or a positive "
                         "multiple, e.g. 64")
    if not 0 <= cfg.self_feed <= 1:
        raise ValueError(f"--self-feed {cfg.self_feed}: give a fraction in [0, 1], e.g. 0.25")
    if cfg.align_loss and not 0 <= cfg.align_layer < len(model.layers):
        raise ValueError(f"--align-layer {cfg.align_layer}: this model has layers 0 to "
                         f"{len(model.layers) - 1}")
    if cfg.attn_guide and not (0 <= cfg.attn_guide_layer < len(model.layers)
                               and 0 <= cfg.attn_guide_head < model.cfg.n_heads):
        raise ValueError(f"--attn-guide-layer {cfg.attn_guide_layer} --attn-guide-head "
                         f"{cfg.attn_guide_head}: this model has layers 0 to "
                         f"{len(model.layers) - 1} and heads 0 to {model.cfg.n_heads - 1}")
    if cfg.attn_guide and any(ex.spoken_span is None for ex in train_ex):
        raise ValueError("--attn-guide needs the corpus's word timings and BPE text offsets, which "
                         "these examples (TinyEdit's pairs, or the phoneme front end) do not have")
    if cfg.align_loss and any(ex.spoken is None for ex in train_ex):
        raise ValueError("--align-loss needs the corpus's word timings, which these examples "
                         "(e.g. TinyEdit's edit pairs) do not have; train without it")
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
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, log, start_t = state["step"], state["log"], state.get("progress", 0.0)
    progress = start_t
    n_params = sum(p.numel() for p in model.parameters())
    start, per_epoch = time.time(), math.ceil(len(train_ex) / cfg.batch_size)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {n_params / 1e6:.1f}M", unit="step")
    model.train()
    order: dict[int, list[list[Example]]] = {}  # batches of the current epoch
    # Wall seconds per training step between evaluations (theirs excluded), minutes since this run
    # started and the process's peak memory, in the log: a run's speed and memory over its length,
    # e.g. to see a compiled run fall back to eager or a heap grow.
    window_t, window_step = time.time(), step
    try:
        while step < cfg.steps:
            if cfg.max_minutes and time.time() - start > cfg.max_minutes * 60:
                break
            epoch, i = divmod(step, per_epoch)
            if epoch not in order:
                order = {epoch: batches(train_ex, cfg.batch_size, cfg.seed, epoch)}
            progress = _progress(step, cfg, time.time() - start, start_t)
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg, progress)
            # Seeded by step, so a resumed run corrupts the same positions as an unbroken one.
            gen = (torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
                   if cfg.speech_noise or cfg.self_feed else None)
            loss = batch_loss(model, order[epoch][i], cfg.speech_noise, gen, cfg.align_loss,
                              cfg.align_layer, cfg.self_feed, cfg.attn_guide,
                              cfg.attn_guide_layer, cfg.attn_guide_head, cfg.precision,
                              cfg.pad_multiple)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            log.append({"step": step, "loss": round(loss.item(), 4)})
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch)
            bar.update(1)
            if step % cfg.eval_every == 0:
                log[-1]["s_per_step"] = round((time.time() - window_t) / (step - window_step), 3)
                log[-1]["minutes"] = round((time.time() - start) / 60, 1)
                log[-1]["peak_rss_gib"] = _peak_rss_gib()
                log[-1].update({s: round(evaluate(model, e, cfg.batch_size, cfg.precision), 4)
                                for s, e in held.items()})
                bar.write(f"step {step}: " + json.dumps(log[-1]))
                window_t, window_step = time.time(), step
            if step % cfg.ckpt_every == 0:
                _save_ckpt(ckpt, model, opt, step, log, progress)
    finally:
        bar.close()
        _save_ckpt(ckpt, model, opt, step, log, progress)
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
    final = {s: round(evaluate(model, e, cfg.batch_size), 4) for s, e in held.items()}
    return {"steps": step, "params": sum(p.numel() for p in model.parameters()),
            "train_examples": len(train_ex), "epochs": round(step / per_epoch, 2),
            "heldout_loss": final, "last_train_loss": log[-1]["loss"] if log else None,
            "minutes_this_run": round((time.time() - start) / 60, 1),
            # every held-out evaluation's record (train.json's log keeps only the last steps)
            "heldout_loss_by_step": [r for r in log if set(held) <= r.keys()],
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
    if cfg.word_crops:
        crops, crop_tokens = crop_rows(split["train"], tokens, cfg.word_crops, cfg.seed)
        train_ex += make_examples(crops, tokens | crop_tokens, tokenizer, seed=cfg.seed + 1,
                                  prompt_rows=rows)
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
    step, log, start = fit(model, train_ex, held, cfg)
    summary = run_summary(model, train_ex, held, cfg, step, log, start)
    if previous:
        summary["continued_from"] = previous
    export = Path(cfg.export)
    model.cpu().save(export)
    save_tokenizer(tokenizer, export)
    write_prompt_bank(rows, tokens, export)
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
