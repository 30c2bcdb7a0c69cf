"""The 25 Hz speech codec: k-means tokens over stacked log-mel and pitch frames.

A token stands for `stack` consecutive 10 ms frames (40 ms, so 25 tokens a second); token j of a
waveform covers [j/25, (j+1)/25) s. Each frame contributes its 80 log-mel values and, weighted by
`pitch_weight`, its log-F0 and voicing, so that codes are pitch-homogeneous and a voice's gender
survives the round trip. Decoding looks up each code's mean mel frames and F0, smooths the joins
and synthesises with a harmonic-plus-noise vocoder (or Griffin-Lim, for comparison).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from scipy.ndimage import uniform_filter1d
from sklearn.cluster import KMeans

from interp.audio.features import MelConfig, log_mel, mel_to_audio
from interp.audio.pitch import frame_f0
from interp.audio.vocoder import synthesize

WEIGHTS = "codec.safetensors"
CONFIG = "codec.json"


@dataclass(frozen=True)
class CodecConfig:
    """Codec hyper-parameters."""

    n_codes: int = 512
    """codebook size"""
    stack: int = 4
    """10 ms mel frames per token (4 → 25 Hz)"""
    n_iter: int = 32
    """Griffin-Lim iterations when decoding"""
    smooth: int = 3
    """moving-average width (frames) over decoded mel, to soften token joins; 1 = off"""
    pitch_weight: float = 6.0
    """weight of the (standardised) log-F0 and voicing features against 320 mel features"""
    decoder: str = "hnm"
    """"hnm" (harmonic-plus-noise vocoder with code-book F0) or "griffinlim" (mel only)"""
    fit_tokens: int = 120_000
    """tokens sampled from the train split to fit k-means"""
    seed: int = 0
    """k-means and Griffin-Lim seed"""
    mel: MelConfig = field(default_factory=MelConfig)

    @property
    def token_rate(self) -> float:
        return self.mel.frame_rate / self.stack

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CodecConfig:
        return cls(**{**d, "mel": MelConfig(**d["mel"])})


class SpeechCodec:
    """wav ⇄ 25 Hz discrete tokens. Build with `fit` or `load`."""

    def __init__(self, cfg: CodecConfig, centroids: np.ndarray, mean: np.ndarray,
                 std: np.ndarray, code_f0: np.ndarray):
        self.cfg = cfg
        self.centroids = centroids.astype(np.float32)  # (K, D) standardised, D = stack*(n_mels+2)
        self.mean = mean.astype(np.float32)  # (D,)
        self.std = std.astype(np.float32)  # (D,)
        self.code_f0 = code_f0.astype(np.float32)  # (K, stack) Hz, 0 = unvoiced
        self.token_decoder = None  # a learned decoder (interp.audio.token_decoder) when loaded

    @property
    def n_codes(self) -> int:
        return len(self.centroids)

    @property
    def sample_rate(self) -> int:
        return self.cfg.mel.sample_rate

    # -- features -------------------------------------------------------------------------
    @staticmethod
    def frames(audio: np.ndarray, cfg: CodecConfig) -> tuple[np.ndarray, np.ndarray]:
        """(N, stack, n_mels+2) features [log-mel, log-F0, voiced] and (N, stack) F0 in Hz,
        N = ceil(duration * token_rate)."""
        mel = log_mel(audio, cfg.mel)
        n_tok = max(1, int(np.ceil(len(audio) / (cfg.mel.hop_length * cfg.stack))))
        need = n_tok * cfg.stack
        mel = np.pad(mel, ((0, max(0, need - len(mel))), (0, 0)), mode="edge")[:need]
        f0 = frame_f0(audio, cfg.mel.sample_rate, cfg.mel.hop_length, need)
        voiced = (f0 > 0).astype(np.float32)
        # Unvoiced frames sit at a neutral log-F0 (~140 Hz) so only the voicing flag separates them.
        lf0 = np.where(f0 > 0, np.log(np.maximum(f0, 1.0)), np.log(140.0))
        x = np.concatenate([mel, lf0[:, None], voiced[:, None]], axis=1)
        return x.reshape(n_tok, cfg.stack, -1), f0.reshape(n_tok, cfg.stack)

    def _weights(self) -> np.ndarray:
        n_mels = self.cfg.mel.n_mels
        w = np.ones(n_mels + 2, np.float32)
        w[n_mels:] = self.cfg.pitch_weight
        return np.tile(w, self.cfg.stack)

    def encode(self, audio: np.ndarray, sr: int | None = None) -> np.ndarray:
        """(N,) int64 tokens of a mono waveform at the codec's sample rate."""
        if sr is not None and sr != self.sample_rate:
            raise ValueError(f"audio is {sr} Hz but the codec expects {self.sample_rate} Hz; "
                             "resample it first (e.g. librosa.resample)")
        if audio.ndim != 1 or len(audio) == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {audio.shape}")
        return self.encode_frames(self.frames(audio, self.cfg)[0])

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N,) int64 tokens of (N, stack, n_mels + 2) features from `frames` (what `encode` does
        after computing them, for callers that already have them)."""
        x = (frames.reshape(-1, len(self.mean)) - self.mean) / self.std * self._weights()
        # argmin ||x - c||² = argmax (x·c - ||c||²/2)
        scores = x @ self.centroids.T - 0.5 * (self.centroids**2).sum(1)
        return scores.argmax(1).astype(np.int64)

    def same_code_book(self, other: SpeechCodec) -> bool:
        """Whether `other` turns audio into the same tokens (its decoding may differ)."""
        # Tokens follow the features (mel settings, stack), their scaling (mean, std, pitch
        # weight) and the centroids; the decoder and smoothing only shape the sound.
        a, b = self.cfg, other.cfg
        return (a.stack == b.stack and a.mel == b.mel and a.pitch_weight == b.pitch_weight
                and self.centroids.shape == other.centroids.shape
                and all(bool(np.array_equal(x, y)) for x, y in
                        ((self.centroids, other.centroids), (self.mean, other.mean),
                         (self.std, other.std))))

    def codebook(self) -> np.ndarray:
        """(K, stack, n_mels + 2) each code's centroid in feature units: its members' mean
        [log-mel…, log-F0, voiced] per frame (what `interp.audio.code_profile` reads)."""
        raw = self.centroids / self._weights() * self.std + self.mean
        return raw.reshape(self.n_codes, self.cfg.stack, self.cfg.mel.n_mels + 2)

    def _checked(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.n_codes):
            raise ValueError(f"token ids must lie in [0, {self.n_codes}); got "
                             f"[{tokens.min()}, {tokens.max()}]")
        return tokens

    def tokens_to_mel(self, tokens: np.ndarray) -> np.ndarray:
        """(N*stack, n_mels) log-mel of the tokens' code-book entries, joins smoothed."""
        tokens = self._checked(tokens)
        raw = self.centroids[tokens] / self._weights() * self.std + self.mean
        return self._smoothed(raw.reshape(-1, self.cfg.mel.n_mels + 2)[:, : self.cfg.mel.n_mels])

    def _smoothed(self, mel: np.ndarray) -> np.ndarray:
        """`mel` with a moving average over `cfg.smooth` frames (softens token joins)."""
        if self.cfg.smooth > 1:
            return uniform_filter1d(mel, self.cfg.smooth, axis=0, mode="nearest")
        return mel

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Float32 waveform of `tokens` (len = N * 640 samples at 16 kHz)."""
        if len(tokens) == 0:
            raise ValueError("no tokens to decode")
        if self.token_decoder is not None:
            from interp.audio.token_decoder import decode_frames

            mel, f0 = decode_frames(self.token_decoder, self, self._checked(tokens))
            return synthesize(mel, f0, self.cfg.mel, self.cfg.seed)
        return self._vocode(self.tokens_to_mel(tokens),
                            self.code_f0[np.asarray(tokens)].reshape(-1))

    def _vocode(self, mel: np.ndarray, f0: np.ndarray) -> np.ndarray:
        """Waveform of (T, n_mels) log-mel and (T,) F0 by the configured decoder."""
        if self.cfg.decoder == "griffinlim":
            return mel_to_audio(mel, self.cfg.mel, self.cfg.n_iter,
                                length=len(mel) * self.cfg.mel.hop_length, seed=self.cfg.seed)
        return synthesize(mel, f0, self.cfg.mel, self.cfg.seed)

    def resynthesize(self, audio: np.ndarray) -> np.ndarray:
        """The decoder's ceiling: `audio` rendered by the same vocoder from its own log-mel and
        F0 (no code book), smoothed as decoding smooths. What a round trip loses beyond this is
        the code book's; what this loses is the vocoder's."""
        x, f0 = self.frames(audio, self.cfg)
        mel = x[..., : self.cfg.mel.n_mels].reshape(-1, self.cfg.mel.n_mels)
        return self._vocode(self._smoothed(mel), f0.reshape(-1))

    # -- fitting and files ----------------------------------------------------------------
    @classmethod
    def fit(cls, audios: list[np.ndarray], cfg: CodecConfig) -> SpeechCodec:
        """k-means over stacked frames of `audios` (subsampled to `cfg.fit_tokens`)."""
        if not audios:
            raise ValueError("no audio to fit the codec on")
        feats, f0s = zip(*(cls.frames(a, cfg) for a in audios), strict=True)
        x = np.concatenate(feats).reshape(-1, cfg.stack * (cfg.mel.n_mels + 2))
        f0 = np.concatenate(f0s)
        rng = np.random.default_rng(cfg.seed)
        if len(x) > cfg.fit_tokens:
            keep = rng.choice(len(x), cfg.fit_tokens, replace=False)
            x, f0 = x[keep], f0[keep]
        mean, std = x.mean(0), x.std(0) + 1e-3
        codec = cls(cfg, np.zeros((1, x.shape[1])), mean, std, np.zeros((1, cfg.stack)))
        km = KMeans(n_clusters=min(cfg.n_codes, len(x)), n_init=1, max_iter=60,
                    random_state=cfg.seed)
        labels = km.fit_predict((x - mean) / std * codec._weights())
        codec.centroids = km.cluster_centers_.astype(np.float32)
        codec.code_f0 = _code_f0(labels, f0, len(codec.centroids))
        return codec

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"centroids": self.centroids, "mean": self.mean, "std": self.std,
                   "code_f0": self.code_f0},
                  str(folder / WEIGHTS))
        (folder / CONFIG).write_text(json.dumps(self.cfg.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> SpeechCodec:
        folder = Path(folder)
        if not (folder / WEIGHTS).exists() or not (folder / CONFIG).exists():
            raise FileNotFoundError(f"no codec in {folder} (expected {WEIGHTS} and {CONFIG}); "
                                    "fit one with `python -m interp.audio fit`")
        t = load_file(str(folder / WEIGHTS))
        cfg = CodecConfig.from_dict(json.loads((folder / CONFIG).read_text()))
        codec = cls(cfg, t["centroids"], t["mean"], t["std"], t["code_f0"])
        if (folder / "decoder.safetensors").exists():  # torch only for codecs that have one
            from interp.audio.token_decoder import load_decoder

            codec.token_decoder = load_decoder(folder, codec)
        return codec


def _code_f0(labels: np.ndarray, f0: np.ndarray, n_codes: int) -> np.ndarray:
    """(K, stack) F0 of each code's frames: geometric mean over voiced members, 0 where most of
    the code's members are unvoiced at that frame."""
    out = np.zeros((n_codes, f0.shape[1]), np.float32)
    for k in range(n_codes):
        members = f0[labels == k]
        if len(members) == 0:
            continue
        voiced = members > 0
        for j in range(f0.shape[1]):
            if voiced[:, j].mean() >= 0.5:
                out[k, j] = np.exp(np.log(members[voiced[:, j], j]).mean())
    return out
