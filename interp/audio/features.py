"""Log-mel frames: the representation the speech codec quantises and decodes from."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import librosa
import numpy as np

from interp.audio import SAMPLE_RATE


@dataclass(frozen=True)
class MelConfig:
    """80-bin log-mel at 100 Hz over 16 kHz audio; 4 stacked frames make one 25 Hz token."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 160
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    floor: float = 1e-5

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def mel_basis(cfg: MelConfig) -> np.ndarray:
    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                               fmin=cfg.fmin, fmax=cfg.fmax)


def log_mel(audio: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """(T, n_mels) natural-log mel power, T = ceil(len / hop)."""
    spec = np.abs(librosa.stft(np.asarray(audio, np.float32), n_fft=cfg.n_fft,
                               hop_length=cfg.hop_length, center=True)) ** 2
    mel = mel_basis(cfg) @ spec
    return np.log(np.maximum(mel, cfg.floor)).T.astype(np.float32)


def mel_to_audio(logmel: np.ndarray, cfg: MelConfig, n_iter: int = 32, length: int | None = None,
                 seed: int = 0) -> np.ndarray:
    """Invert (T, n_mels) log-mel power to audio: pseudo-inverse of the mel filters, then
    Griffin-Lim phase reconstruction (`n_iter` iterations, momentum 0.99)."""
    mel = np.exp(logmel.T)
    basis = mel_basis(cfg)
    power = np.maximum(np.linalg.pinv(basis) @ mel, 0.0)
    audio = librosa.griffinlim(np.sqrt(power), n_iter=n_iter, hop_length=cfg.hop_length,
                               n_fft=cfg.n_fft, random_state=seed)
    if length is not None:  # T centred frames span (T-1) hops; pad or cut to the asked length
        audio = np.pad(audio, (0, max(0, length - len(audio))))[:length]
    return audio.astype(np.float32)
