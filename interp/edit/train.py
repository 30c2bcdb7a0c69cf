"""`python -m interp.edit train`: fine-tune the shipped TinyCosy into TinyEdit on the edit pairs.

TinyCosy's loop (`interp.models.train.fit`): next-speech-token loss over the target, AdamW with
warm-up and cosine decay, checkpoints every `ckpt_every` steps and on Ctrl-C / SIGTERM; running
the same command again resumes. Weights start from `--init` (TinyCosy: same tokenizer, codec and
layout), which already turns text + prompt speech into speech in that voice. At the end the model,
tokenizer, `edit.json` and `train.json` are exported to `--export`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.atomic import atomic_write_json
from interp.audio.tokenize_corpus import load_token_manifest, load_tokens
from interp.device import pick_device
from interp.edit.build import TOKENS, load_pairs
from interp.edit.data import make_edit_examples
from interp.edit.model import EDIT_FILE, EDIT_SAMPLING
from interp.edit.plan import INSTRUCTIONS, OPERATIONS
from interp.models.text_tokenizer import load_tokenizer, save_tokenizer
from interp.models.tinycosy import TinyCosy
from interp.models.tinycosy_backbone import write_codec_pointer
from interp.models.train import LoopConfig, fit, run_summary
from interp.paths import TINYCOSY_DIR

HELD = ("heldout_sentences", "heldout_voices")


@dataclass(frozen=True)
class EditTrainConfig(LoopConfig):
    """Fine-tuning run of TinyEdit (the loop's fields with fine-tuning defaults)."""

    steps: int = 1000
    """optimiser steps"""
    lr: float = 5e-4
    """peak learning rate (fine-tuning: lower than TinyCosy's)"""
    warmup: int = 50
    """warm-up steps"""
    eval_every: int = 200
    """steps between held-out evaluations"""
    eval_examples: int = 100
    """held-out examples per evaluated split"""
    ckpt_every: int = 50
    """steps between checkpoints"""
    seed: int = 0
    """seed of data order"""
    pairs: str = "runs/tinyedit/pairs"
    """edit-pairs folder (python -m interp.edit build)"""
    tokens: str = ""
    """speech tokens of the pairs (default: <pairs>/tokens)"""
    init: str = str(TINYCOSY_DIR)
    """TinyCosy export whose weights, tokenizer and codec size TinyEdit starts from"""
    out: str = "runs/tinyedit/model"
    """run folder: checkpoint"""
    export: str = "data/tinyedit"
    """where the finished model, tokenizer, edit.json and train.json are written"""
    drop_transcript: float = 0.2
    """fraction of training examples without the source transcript"""


def _check_compatible(model: TinyCosy, tokenizer, token_manifest: dict, init: str) -> None:
    if token_manifest["n_codes"] != model.cfg.speech_codes:
        raise ValueError(f"the pairs were tokenized with {token_manifest['n_codes']} codes but "
                         f"{init} speaks {model.cfg.speech_codes}; tokenize with its codec")
    if tokenizer.get_vocab_size() > model.cfg.text_vocab:
        raise ValueError(f"the tokenizer of {init} does not fit its model")


def train_edit(cfg: EditTrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    tokens_dir = cfg.tokens or str(Path(cfg.pairs) / TOKENS)
    pairs, tokens = load_pairs(cfg.pairs), load_tokens(tokens_dir)
    tokenizer = load_tokenizer(cfg.init)
    model = TinyCosy.load(cfg.init, device)
    _check_compatible(model, tokenizer, load_token_manifest(tokens_dir), cfg.init)
    train_ex = make_edit_examples([p for p in pairs if p["split"] == "train"], tokens, tokenizer,
                                  cfg.drop_transcript, cfg.seed)
    held = {s: make_edit_examples([p for p in pairs if p["split"] == s], tokens, tokenizer,
                                  0.0)[: cfg.eval_examples] for s in HELD}
    held = {s: e for s, e in held.items() if e}
    if not train_ex:
        raise ValueError(f"no training pairs in {cfg.pairs}")
    step, log, start = fit(model, train_ex, held, cfg)
    summary = run_summary(model, train_ex, held, cfg, step, log, start) | {
        "architecture": "tinyedit", "init": cfg.init}
    export = Path(cfg.export)
    model.cpu().save(export)
    save_tokenizer(tokenizer, export)
    write_codec_pointer(export, Path(load_token_manifest(tokens_dir)["codec_dir"]))
    atomic_write_json(export / EDIT_FILE, {
        "architecture": "tinyedit", "init": cfg.init, "pairs": cfg.pairs,
        "operations": {k: {"mmae_operation": v[0], "granularity": v[1]}
                       for k, v in OPERATIONS.items()},
        "instructions": INSTRUCTIONS, "sampling": EDIT_SAMPLING.__dict__,
        "text_format": "You are a helpful assistant. <instruction><|endofprompt|>[transcript]"})
    atomic_write_json(export / "train.json", summary | {"log": log[-50:]})
    return summary


def main_train(cfg: EditTrainConfig) -> None:
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    s = train_edit(cfg)
    print(f"\nTinyEdit ({s['params'] / 1e6:.1f}M params, from {cfg.init}): {s['steps']} steps, "
          f"{s['epochs']} epochs on {s['device']}; held-out loss {s['heldout_loss']} (uniform: "
          f"{math.log(s['model']['speech_codes']):.2f}) → {cfg.export}")
    print(json.dumps({"last_train_loss": s["last_train_loss"],
                      "minutes_this_run": s["minutes_this_run"]}))
