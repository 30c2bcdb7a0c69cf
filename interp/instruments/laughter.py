"""Laughter instrument: frame-level laughter probability at 25 Hz and an utterance score.

A log-mel front end (computed inside the model, so it takes raw 16 kHz audio), three small 2-D
convolutions that pool to 25 Hz (frame j ↔ [j/25, (j+1)/25) s, the codec's token grid), a
bidirectional GRU for the ~1 s context that a run of "ha" bursts needs, and a per-frame logit.
Utterance score = max over frames of the probability smoothed over 200 ms.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import librosa
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from interp.audio import SAMPLE_RATE
from interp.instruments.common import prepare_audio, require_files
from interp.instruments.data import Augment, ClipPool, augment, distractor
from interp.loop import LoopConfig, fit

NAME = "laughter"
WEIGHTS = "laughter.safetensors"
CONFIG = "config.json"
FRAME_RATE = 25
HOP = 160  # 10 ms mel frames; 4 of them make one 25 Hz frame
SPF = HOP * 4  # samples per 25 Hz frame


@dataclass(frozen=True)
class LaughterModelConfig:
    """Shape of the laughter network."""

    n_mels: int = 64
    """mel bands"""
    n_fft: int = 512
    """STFT size (samples)"""
    channels: int = 24
    """conv channels"""
    rnn: int = 64
    """GRU width (each direction)"""
    smooth_frames: int = 5
    """moving-average width (25 Hz frames) before the utterance max"""
    threshold: float = 0.5
    """frame probability that starts a laughter span"""

    @classmethod
    def from_dict(cls, d: dict) -> LaughterModelConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class LaughterNet(nn.Module):
    """(B, T) waveform → (B, N) frame logits, N = ceil(T / 640)."""

    def __init__(self, cfg: LaughterModelConfig):
        super().__init__()
        self.cfg = cfg
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmax=8000)
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        c = cfg.channels

        def block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.ReLU(), nn.MaxPool2d(pool))

        # (B, 1, T100, F) → pools (time, freq): (2, 2), (2, 2), (1, 2) → (B, c, T25, F/8)
        self.conv = nn.Sequential(block(1, c, (2, 2)), block(c, c, (2, 2)), block(c, c, (1, 2)))
        self.proj = nn.Linear(c * (cfg.n_mels // 8), 2 * cfg.rnn)
        self.rnn = nn.GRU(2 * cfg.rnn, cfg.rnn, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * cfg.rnn, 1)

    def logmel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T) → (B, T100, n_mels) log-mel, normalised per clip (gain-invariant)."""
        spec = torch.stft(wav, self.cfg.n_fft, HOP, window=self.window, return_complex=True)
        power = spec.abs() ** 2  # (B, F, T100)
        x = torch.log(self.mel @ power + 1e-6).transpose(1, 2)
        mean = x.mean(dim=(1, 2), keepdim=True)
        std = x.std(dim=(1, 2), keepdim=True) + 1e-3
        return (x - mean) / std

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        n = -(-wav.shape[1] // SPF)  # frames at 25 Hz
        x = self.logmel(wav)  # (B, T100, M)
        need = n * 4
        x = nn.functional.pad(x, (0, 0, 0, max(0, need - x.shape[1])))[:, :need]
        h = self.conv(x[:, None])  # (B, c, n, M/8)
        h = h.permute(0, 2, 1, 3).flatten(2)  # (B, n, c*M/8)
        h, _ = self.rnn(torch.relu(self.proj(h)))
        return self.head(h)[..., 0]  # (B, n)


def smooth(p: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(p) == 0:
        return p
    k = np.ones(width) / width
    return np.convolve(np.pad(p, (width // 2, width - 1 - width // 2), mode="edge"), k, "valid")


def frames_to_spans(p: np.ndarray, threshold: float, min_gap_s: float = 0.2,
                    min_len_s: float = 0.12) -> list[tuple[float, float]]:
    """Runs of frames above threshold as (start, end) seconds; short gaps merged, blips dropped."""
    on = np.concatenate([[False], p > threshold, [False]])
    starts = np.flatnonzero(~on[:-1] & on[1:])
    ends = np.flatnonzero(on[:-1] & ~on[1:])
    spans: list[list[float]] = []
    for s, e in zip(starts / FRAME_RATE, ends / FRAME_RATE, strict=True):
        if spans and s - spans[-1][1] < min_gap_s:
            spans[-1][1] = e
        else:
            spans.append([s, e])
    return [(round(float(s), 3), round(float(e), 3)) for s, e in spans if e - s >= min_len_s]


class FrameScores:
    """Spans and an utterance score from `frame_probs` (25 Hz laughter probabilities), with
    `cfg.smooth_frames` and `cfg.threshold`: what every laughter instrument shares."""

    cfg: LaughterModelConfig

    def frame_probs(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        raise NotImplementedError

    def score_frames(self, p: np.ndarray) -> float:
        return float(smooth(p, self.cfg.smooth_frames).max()) if len(p) else 0.0

    def score(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
        """Utterance laughter probability: max of the 200 ms-smoothed frame probabilities."""
        return self.score_frames(self.frame_probs(wav, sr))

    def spans_of(self, p: np.ndarray) -> list[tuple[float, float]]:
        """Laughter spans (seconds) from frame probabilities."""
        return frames_to_spans(smooth(p, self.cfg.smooth_frames), self.cfg.threshold)

    def spans(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> list[tuple[float, float]]:
        return self.spans_of(self.frame_probs(wav, sr))


class LaughterDetector(FrameScores):
    """The shipped detector: frame probabilities, spans and an utterance score for any
    waveform."""

    def __init__(self, net: LaughterNet):
        self.net = net.eval()
        self.cfg = net.cfg

    @torch.no_grad()
    def frame_probs(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """(N,) laughter probability of 25 Hz frames (frame j ↔ [j/25, (j+1)/25) s)."""
        audio, _ = prepare_audio(wav, sr)
        return torch.sigmoid(self.net(torch.from_numpy(audio)[None]))[0].numpy()

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.net.state_dict(), str(folder / WEIGHTS))
        (folder / CONFIG).write_text(json.dumps(asdict(self.cfg), indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> LaughterDetector:
        folder = Path(folder)
        require_files(folder, (WEIGHTS, CONFIG), NAME)
        net = LaughterNet(LaughterModelConfig.from_dict(json.loads((folder / CONFIG).read_text())))
        net.load_state_dict(load_file(str(folder / WEIGHTS)))
        return cls(net)


def frame_labels(tags: list[dict], n: int, speed: float = 1.0) -> np.ndarray:
    """(n,) 1 where a 25 Hz frame's centre lies in a laughter span (times scaled by 1/speed)."""
    centres = (np.arange(n) + 0.5) / FRAME_RATE
    y = np.zeros(n, np.float32)
    for t in tags:
        if t["tag"] == "laughter":
            y[(centres >= t["start"] / speed) & (centres < t["end"] / speed)] = 1.0
    return y


def aligned_crop(x: np.ndarray, y: np.ndarray, n_frames: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A window of n_frames 25 Hz frames starting on a frame boundary (padded with silence)."""
    k = int(rng.integers(0, max(0, len(y) - n_frames) + 1))
    xc = x[k * SPF: (k + n_frames) * SPF]
    yc = y[k: k + n_frames]
    return (np.pad(xc, (0, n_frames * SPF - len(xc))).astype(np.float32),
            np.pad(yc, (0, n_frames - len(yc))).astype(np.float32))


@dataclass(frozen=True)
class LaughterConfig(LaughterModelConfig):
    """Laughter network and its training schedule."""

    steps: int = 800
    """optimiser steps"""
    batch_size: int = 16
    """clips per step"""
    crop_s: float = 4.0
    """training crop length (seconds; shorter utterances are padded with silence)"""
    lr: float = 2e-3
    """peak learning rate"""
    warmup: int = 100
    """warm-up steps"""
    laughter_share: float = 0.5
    """share of training clips drawn from utterances with laughter"""
    distractor_frac: float = 0.05
    """share of training clips replaced by non-speech (noise, noise bursts, tones, silence)"""
    roundtrip_frac: float = 0.5
    """share of training clips taken from codec round trips"""
    n_roundtrip: int = 3072
    """train utterances with a (cached) round trip"""
    n_eval: int = 0
    """heldout_voices utterances to evaluate on (0 = all)"""
    n_eval_roundtrip: int = 384
    """heldout_voices utterances evaluated after the round trip"""
    seed: int = 0
    """random seed"""
    max_minutes: float = 20.0
    """stop training after this many minutes"""


def new_detector(cfg: LaughterModelConfig) -> LaughterDetector:
    return LaughterDetector(LaughterNet(LaughterModelConfig.from_dict(asdict(cfg))))


def train(det: LaughterDetector, pool: ClipPool, cfg: LaughterConfig) -> dict:
    """Frame-level BCE on random crops; half the clips carry laughter, breath counts as 0."""
    rng = np.random.default_rng(cfg.seed)
    n_frames = int(cfg.crop_s * FRAME_RATE)
    aug = Augment(speed=0.1)
    pool.add_subset(NAME, lambda r: any(t["tag"] == NAME for t in r["tags"]))

    def step_loss(step: int) -> torch.Tensor:
        xs, ys = [], []
        for _ in range(cfg.batch_size):
            if rng.random() < cfg.distractor_frac:
                xs.append(distractor(rng, n_frames * SPF))
                ys.append(np.zeros(n_frames, np.float32))
                continue
            clip = pool.draw(rng, NAME if rng.random() < cfg.laughter_share else None)
            x, speed = augment(clip.audio, rng, aug)
            y = frame_labels(clip.row["tags"], -(-len(x) // SPF), speed)
            x, y = aligned_crop(x, y, n_frames, rng)
            xs.append(x)
            ys.append(y)
        logits = det.net(torch.from_numpy(np.stack(xs)))
        return nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(np.stack(ys)))

    return fit(det.net, step_loss, LoopConfig(cfg.steps, cfg.lr, cfg.warmup, cfg.max_minutes),
               desc="train laughter")


def match_spans(pred: list[tuple[float, float]], true: list[tuple[float, float]],
                min_iou: float = 0.5) -> int:
    """Number of one-to-one matches (greedy by IoU) with IoU ≥ min_iou."""
    pairs = []
    for i, (ps, pe) in enumerate(pred):
        for j, (ts, te) in enumerate(true):
            inter = max(0.0, min(pe, te) - max(ps, ts))
            union = max(pe, te) - min(ps, ts)
            if union > 0 and inter / union >= min_iou:
                pairs.append((inter / union, i, j))
    used_p, used_t = set(), set()
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def _f1(tp: int, n_pred: int, n_true: int) -> dict:
    p = tp / n_pred if n_pred else 1.0
    r = tp / n_true if n_true else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def non_speech_false_positives(det: LaughterDetector, n: int = 200, seed: int = 12345) -> dict:
    """Share of 3 s non-speech clips (noise, noise bursts, tones, silence) scored as laughter."""
    rng = np.random.default_rng(seed)
    scores = np.array([det.score(distractor(rng, 3 * SAMPLE_RATE)) for _ in range(n)])
    return {"n": n, "false_positive_rate": round(float((scores > det.cfg.threshold).mean()), 4),
            "max_score": round(float(scores.max()), 4)}


def evaluate(det: LaughterDetector, clips: list[tuple[np.ndarray, dict]]) -> dict:
    """Utterance accuracy/AUROC, frame F1 and span F1 (IoU ≥ 0.5) on (audio, row) pairs."""
    from sklearn.metrics import roc_auc_score

    scores, labels, breath_only = [], [], []
    tp = fp = fn = span_tp = n_pred = n_true = 0
    for audio, row in clips:
        p = smooth(det.frame_probs(audio), det.cfg.smooth_frames)
        y = frame_labels(row["tags"], len(p)) > 0
        hit = p > det.cfg.threshold
        tp, fp, fn = tp + int((hit & y).sum()), fp + int((hit & ~y).sum()), fn + int((~hit & y).sum())
        true = [(t["start"], t["end"]) for t in row["tags"] if t["tag"] == NAME]
        pred = frames_to_spans(p, det.cfg.threshold)
        span_tp, n_pred, n_true = span_tp + match_spans(pred, true), n_pred + len(pred), n_true + len(true)
        scores.append(float(p.max()) if len(p) else 0.0)
        labels.append(bool(true))
        breath_only.append(not true and any(t["tag"] == "breath" for t in row["tags"]))
    s, u, b = np.array(scores), np.array(labels), np.array(breath_only)
    pred_u = s > det.cfg.threshold
    return {"n": len(s), "with_laughter": int(u.sum()),
            "utterance_accuracy": round(float((pred_u == u).mean()), 4),
            "utterance_auroc": round(float(roc_auc_score(u, s)), 4) if 0 < u.sum() < len(u) else None,
            "breath_only_false_positive_rate": round(float(pred_u[b].mean()), 4) if b.any() else None,
            "frame": _f1(tp, tp + fp, tp + fn), "span_iou0.5": _f1(span_tp, n_pred, n_true)}
