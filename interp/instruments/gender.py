"""Speaker-gender instrument: P(male) from a small `Wav2Vec2ForSequenceClassification`.

The shipped model is a wav2vec2 with a narrow conv feature extractor and two transformer layers,
trained from scratch on 1.5 s crops of corpus audio and of its codec round trips, with one
temperature fitted on held-out sentences. Any local HF audio-classification checkpoint whose
labels include "male" loads the same way (`GenderClassifier.load(model_dir)`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

from interp.audio import SAMPLE_RATE
from interp.instruments.calibration import ece, sigmoid
from interp.instruments.common import InstrumentError, prepare_audio, require_files
from interp.instruments.data import Augment, ClipPool, augment, random_crop
from interp.loop import LoopConfig, fit

logger = logging.getLogger(__name__)

NAME = "gender"
CALIBRATION = "calibration.json"
LABELS = ("female", "male")
CHUNK_S = 20.0


@dataclass(frozen=True)
class GenderConfig:
    """Model size and training schedule of the gender classifier."""

    hidden_size: int = 128
    """transformer width"""
    layers: int = 2
    """transformer layers"""
    heads: int = 4
    """attention heads"""
    intermediate_size: int = 256
    """transformer MLP width"""
    conv_channels: int = 32
    """channels of each of the 7 feature-extractor convolutions (wav2vec2: 512)"""
    steps: int = 800
    """optimiser steps"""
    batch_size: int = 32
    """crops per step"""
    crop_s: float = 1.5
    """training crop length (seconds)"""
    lr: float = 1e-3
    """peak learning rate"""
    warmup: int = 100
    """warm-up steps"""
    roundtrip_frac: float = 0.5
    """share of training crops taken from codec round trips"""
    n_roundtrip: int = 1536
    """train utterances with a (cached) round trip"""
    n_calibration: int = 400
    """heldout_sentences utterances (half original, half round trip) to fit the temperature"""
    n_eval: int = 0
    """heldout_voices utterances to evaluate on (0 = all)"""
    n_eval_roundtrip: int = 384
    """heldout_voices utterances evaluated after the round trip"""
    seed: int = 0
    """random seed"""
    max_minutes: float = 20.0
    """stop training after this many minutes"""


def model_config(cfg: GenderConfig) -> Wav2Vec2Config:
    return Wav2Vec2Config(
        hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate_size,
        conv_dim=(cfg.conv_channels,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2), feat_extract_norm="group",
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
        classifier_proj_size=cfg.hidden_size // 2, mask_time_prob=0.0, layerdrop=0.0,
        num_labels=2, id2label=dict(enumerate(LABELS)), label2id={v: i for i, v in enumerate(LABELS)},
        vocab_size=2, bos_token_id=None, eos_token_id=None, pad_token_id=0)


def normalize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per clip (what `Wav2Vec2FeatureExtractor(do_normalize)` does)."""
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


class GenderClassifier:
    """P(male) of a waveform; `temperature` divides the male-vs-rest log-odds."""

    def __init__(self, model: Wav2Vec2ForSequenceClassification, temperature: float = 1.0,
                 do_normalize: bool = True, extractor=None):
        self.model = model.eval()
        self.temperature = float(temperature)
        self.do_normalize = do_normalize
        # another architecture's own feature extractor (e.g. AST's filter banks); None: the
        # waveform, normalised per clip as Wav2Vec2's extractor does
        self.extractor = extractor
        labels = {int(i): str(v).lower() for i, v in model.config.id2label.items()}
        male = [i for i, v in labels.items() if v in ("male", "m", "man")]
        if len(male) != 1:
            raise InstrumentError(f"cannot tell which label is 'male' among {list(labels.values())}")
        self.male_index = male[0]

    @torch.no_grad()
    def log_odds(self, audio: np.ndarray) -> float:
        """Uncalibrated male-vs-rest log-odds of 16 kHz mono audio (long audio: chunk mean)."""
        step = int(CHUNK_S * SAMPLE_RATE)
        chunks = [audio[i: i + step] for i in range(0, len(audio), step)]
        chunks = [c for c in chunks if len(c) >= SAMPLE_RATE // 2] or [audio]
        total, weight = 0.0, 0
        for c in chunks:
            if self.extractor is not None:
                inputs = self.extractor(c, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                logits = self.model(**inputs).logits[0].double()
            else:
                x = normalize(c) if self.do_normalize else c
                logits = self.model(torch.from_numpy(x)[None]).logits[0].double()  # (n_labels,)
            logp = torch.log_softmax(logits, 0)
            rest = torch.logsumexp(torch.cat([logp[: self.male_index],
                                              logp[self.male_index + 1:]]), 0)
            total += float(logp[self.male_index] - rest) * len(c)
            weight += len(c)
        return total / weight

    def p_male(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
        audio, _ = prepare_audio(wav, sr)
        return float(sigmoid(self.log_odds(audio) / self.temperature))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.model.save_pretrained(folder)
        Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=self.do_normalize,
                                 return_attention_mask=False).save_pretrained(folder)
        (folder / CALIBRATION).write_text(json.dumps({"temperature": self.temperature}) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> GenderClassifier:
        folder = Path(folder)
        require_files(folder, ("config.json",), NAME)
        if not any((folder / f).exists() for f in ("model.safetensors", "pytorch_model.bin")):
            require_files(folder, ("model.safetensors",), NAME)
        cal = folder / CALIBRATION
        temp = json.loads(cal.read_text())["temperature"] if cal.exists() else 1.0
        do_norm = True
        pre = folder / "preprocessor_config.json"
        if pre.exists():
            do_norm = bool(json.loads(pre.read_text()).get("do_normalize", True))
        kind = json.loads((folder / "config.json").read_text()).get("model_type")
        if kind == "wav2vec2":  # the shipped kind: the waveform in, no extractor needed
            return cls(Wav2Vec2ForSequenceClassification.from_pretrained(folder), temp, do_norm)
        # any other audio classifier transformers knows (HuBERT, WavLM, AST, ...), with its own
        # feature extractor; labels must name "male" (checked in __init__)
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        try:
            model = AutoModelForAudioClassification.from_pretrained(folder, local_files_only=True)
            extractor = (AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
                         if pre.exists() else None)
        except (OSError, ValueError) as exc:
            raise InstrumentError(f"cannot load an audio classifier from {folder} ({exc})") from None
        return cls(model, temp, do_norm, extractor)


def new_classifier(cfg: GenderConfig) -> GenderClassifier:
    return GenderClassifier(Wav2Vec2ForSequenceClassification(model_config(cfg)))


def train(clf: GenderClassifier, pool: ClipPool, cfg: GenderConfig) -> dict:
    """Fit on random crops of the pool (labels from the rows' gender)."""
    rng = np.random.default_rng(cfg.seed)
    n = int(cfg.crop_s * SAMPLE_RATE)
    aug = Augment(speed=0.05)
    male = clf.male_index

    def step_loss(step: int) -> torch.Tensor:
        xs, ys = [], []
        for _ in range(cfg.batch_size):
            clip = pool.draw(rng)
            x, _ = augment(clip.audio, rng, aug)
            xs.append(normalize(random_crop(x, n, rng)[0]))
            ys.append(male if clip.row["gender"] == "male" else 1 - male)
        out = clf.model(torch.from_numpy(np.stack(xs)), labels=torch.tensor(ys))
        return out.loss

    loop = LoopConfig(cfg.steps, cfg.lr, cfg.warmup, cfg.max_minutes)
    return fit(clf.model, step_loss, loop, desc="train gender")


def score(clf: GenderClassifier, clips: list[tuple[np.ndarray, dict]]) -> tuple[np.ndarray, ...]:
    """(log-odds, labels 1 = male, voice ids) of (audio, row) pairs."""
    z = np.array([clf.log_odds(a) for a, _ in clips])
    y = np.array([int(r["gender"] == "male") for _, r in clips])
    return z, y, np.array([r["voice_id"] for _, r in clips])


def figures(z: np.ndarray, y: np.ndarray, voices: np.ndarray, temperature: float) -> dict:
    """Accuracy, ECE before/after temperature, worst voice."""
    p_raw, p_cal = sigmoid(z), sigmoid(z / temperature)
    per_voice = {v: float(((z[voices == v] > 0) == y[voices == v]).mean()) for v in set(voices)}
    worst = min(per_voice, key=per_voice.get)
    return {"n": len(z), "voices": len(per_voice), "accuracy": round(float(((z > 0) == y).mean()), 4),
            "ece_uncalibrated": round(ece(p_raw, y), 4), "ece": round(ece(p_cal, y), 4),
            "mean_p_male": {"male": round(float(p_cal[y == 1].mean()), 4),
                            "female": round(float(p_cal[y == 0].mean()), 4)},
            "worst_voice": {"voice": worst, "accuracy": round(per_voice[worst], 4)}}


def config_dict(cfg: GenderConfig) -> dict:
    return asdict(cfg)
