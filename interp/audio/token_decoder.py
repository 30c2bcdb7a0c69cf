"""A learned token → frames decoder: each token's log-mel and pitch read from its neighbours too.

The code book decodes a token to its cluster's mean frames, whatever surrounds it; a speech LM's
decoder (CosyVoice's flow-matching stage) reads the token *sequence* instead, because a code's
neighbours say which of its members it was (coarticulation, pitch movement, the formant glide
into the next sound). This is that stage at TinyCosy's scale: a small non-causal convolution
over the token sequence that predicts each token's `stack` frames of [log-mel, log-F0, voicing]
as a correction to the code-book entry (its last layer starts at zero, so an untrained decoder
*is* the code book). The tokens are unchanged: a model trained on the codec's tokens speaks
through it without retraining.

    fit_decoder(corpus, codec, DecoderFitConfig())   → TokenDecoder (saved beside the codec)
    codec.decode(tokens)                             uses it when the codec folder holds one
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from interp.loop import LoopConfig, fit

WEIGHTS = "decoder.safetensors"
CONFIG = "decoder.json"


@dataclass(frozen=True)
class DecoderFitConfig:
    """Size and training of the token decoder."""

    channels: int = 192
    """convolution width"""
    layers: int = 4
    """residual convolution blocks (each sees ±kernel//2 tokens more)"""
    kernel: int = 5
    """tokens per convolution (5: ±2; four blocks see ±8 tokens, 0.32 s each side)"""
    max_utts: int = 6000
    """train-split utterances whose features are learned from"""
    steps: int = 3000
    """optimiser steps"""
    batch: int = 32
    """crops per step"""
    crop: int = 64
    """tokens per crop (2.56 s)"""
    lr: float = 2e-3
    """peak Adam learning rate (cosine decay)"""
    max_minutes: float = 0.0
    """stop training after this long (0 = no limit); the cosine schedule then ends sooner"""
    eval_utts: int = 200
    """held-out-voice utterances of the feature-error figure"""
    threads: int = 1
    """CPU threads"""
    seed: int = 0
    """initialisation, crops and utterance sample"""


class TokenDecoder(nn.Module):
    """(B, N) tokens → (B, N, D) standardised features, D = stack * (n_mels + 2): the code-book
    entry plus a learned correction from ±layers·(kernel//2) tokens of context."""

    def __init__(self, codebook: torch.Tensor, channels: int, layers: int, kernel: int):
        super().__init__()
        self.register_buffer("codebook", codebook.float())  # (K, D) standardised entries
        k, d = codebook.shape
        self.embed = nn.Embedding(k, channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(channels, channels, kernel, padding=kernel // 2), nn.GELU())
            for _ in range(layers))
        self.norms = nn.ModuleList(nn.GroupNorm(1, channels) for _ in range(layers))
        self.out = nn.Linear(channels, d)
        nn.init.zeros_(self.out.weight)  # an untrained decoder is the code book
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens).transpose(1, 2)  # (B, C, N)
        for block, norm in zip(self.blocks, self.norms, strict=True):
            h = h + block(norm(h))
        return self.codebook[tokens] + self.out(h.transpose(1, 2))


def _standardised_codebook(codec) -> torch.Tensor:  # noqa: ANN001 (SpeechCodec; no cycle)
    return torch.from_numpy(codec.centroids / codec._weights())


def _features(corpus: Path, rows: list[dict], codec, desc: str) -> list[tuple]:  # noqa: ANN001
    """[(tokens (N,), standardised features (N, D))] of `rows`."""
    from interp.corpus.table import load_audio

    out = []
    for r in tqdm(rows, desc=desc, unit="utt"):
        audio, _ = load_audio(corpus, r)
        frames = codec.frames(audio, codec.cfg)[0]  # pitch tracking once, for both
        x = frames.reshape(-1, len(codec.mean))
        out.append((codec.encode_frames(frames),
                    ((x - codec.mean) / codec.std).astype(np.float32)))
    return out


def _mel_error(model: TokenDecoder, data: list[tuple], n_mel_dims: np.ndarray) -> tuple:
    """Mean squared error (standardised units) over the log-mel dims: (code book, decoder)."""
    base, got, n = 0.0, 0.0, 0
    with torch.no_grad():
        for tok, x in data:
            t = torch.from_numpy(tok)[None]
            y = torch.from_numpy(x)[None]
            pred = model(t)
            book = model.codebook[t]
            base += float(((book - y)[..., n_mel_dims] ** 2).sum())
            got += float(((pred - y)[..., n_mel_dims] ** 2).sum())
            n += int(len(tok) * len(n_mel_dims))
    return base / n, got / n


def fit_decoder(corpus: Path, codec, cfg: DecoderFitConfig, out: Path) -> dict:  # noqa: ANN001
    """Train a TokenDecoder on `corpus`'s train split, encoded by `codec`; save it (with a copy of
    the codec) to `out` and return its figures (feature error of the code book and of the
    decoder on held-out voices)."""
    from interp.corpus.table import load_table

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rows = load_table(corpus, "train")
    random.Random(cfg.seed).shuffle(rows)
    train = _features(corpus, rows[: cfg.max_utts], codec, "features (train)")
    held = _features(corpus, load_table(corpus, "heldout_voices")[: cfg.eval_utts], codec,
                     "features (held-out voices)")
    model = TokenDecoder(_standardised_codebook(codec), cfg.channels, cfg.layers, cfg.kernel)
    stack, n_mels = codec.cfg.stack, codec.cfg.mel.n_mels
    per = n_mels + 2
    mel_dims = np.array([j * per + m for j in range(stack) for m in range(n_mels)])
    rng = np.random.default_rng(cfg.seed)
    lengths = np.array([len(t) for t, _ in train])

    def step_loss(_step: int) -> torch.Tensor:
        idx = rng.choice(len(train), cfg.batch, p=lengths / lengths.sum())
        n = min(cfg.crop, int(lengths[idx].min()))
        toks, ys = [], []
        for i in idx:
            tok, x = train[i]
            s = int(rng.integers(0, len(tok) - n + 1))
            toks.append(tok[s: s + n])
            ys.append(x[s: s + n])
        pred = model(torch.from_numpy(np.stack(toks)))
        return ((pred - torch.from_numpy(np.stack(ys))) ** 2).mean()  # standardised: dims alike

    loop = LoopConfig(steps=cfg.steps, lr=cfg.lr, warmup=100, weight_decay=0.0,
                      max_minutes=cfg.max_minutes or math.inf)
    history = fit(model, step_loss, loop, "token decoder")
    base, got = _mel_error(model, held, mel_dims)
    figures = {"steps": history["steps"], "minutes": round(history["wall_s"] / 60, 1),
               "train_utterances": len(train), "heldout_voice_utterances": len(held),
               "heldout_mel_mse": {"codebook": round(base, 4), "decoder": round(got, 4)},
               "config": asdict(cfg)}
    save_decoder(model, out, figures)
    codec.save(out)
    return figures


def save_decoder(model: TokenDecoder, out: Path, figures: dict) -> None:
    """The weights (without the code book, which the codec holds) and `figures`, whose `config`
    is what `load_decoder` rebuilds the model from."""
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "codebook"},
              str(out / WEIGHTS))
    (out / CONFIG).write_text(json.dumps(figures, indent=1))


def load_decoder(folder: Path, codec) -> TokenDecoder | None:  # noqa: ANN001
    """The folder's TokenDecoder for `codec`, or None when it holds none."""
    if not (folder / WEIGHTS).exists():
        return None
    cfg = DecoderFitConfig(**json.loads((folder / CONFIG).read_text())["config"])
    model = TokenDecoder(_standardised_codebook(codec), cfg.channels, cfg.layers, cfg.kernel)
    state = load_file(str(folder / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"codebook"}:
        raise ValueError(f"{folder / WEIGHTS} does not match {CONFIG} (missing {missing}, "
                         f"unexpected {unexpected}); fit it again with `python -m interp.audio "
                         "fit-decoder`")
    return model.eval()


def decode_frames(model: TokenDecoder, codec, tokens: np.ndarray) -> tuple:  # noqa: ANN001
    """(log-mel (N*stack, n_mels), F0 (N*stack,) Hz, 0 = unvoiced) of `tokens`."""
    with torch.no_grad():
        y = model(torch.from_numpy(np.asarray(tokens, np.int64))[None])[0].numpy()
    raw = (y * codec.std + codec.mean).reshape(-1, codec.cfg.mel.n_mels + 2)
    mel, lf0, voiced = raw[:, :-2], raw[:, -2], raw[:, -1]
    return mel, np.where(voiced > 0.5, np.exp(lf0), 0.0).astype(np.float32)
