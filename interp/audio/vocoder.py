"""Harmonic-plus-noise synthesis from a log-mel envelope and an F0 track.

Griffin-Lim from a code-book mel loses the harmonics of male voices: 80 mel bands cannot hold
100 Hz harmonic spacing, and a code-book average smears it anyway (round-trip F0 of male voices
became unmeasurable). So the decoder rebuilds the excitation explicitly: on voiced frames a sum of
harmonics of the code-book F0 whose amplitudes follow the mel envelope, plus shaped noise
everywhere; per-frame gains then match the target mel energy.
"""

from __future__ import annotations

import librosa
import numpy as np

from interp.audio.features import MelConfig, log_mel, mel_basis

_NOISE_IN_VOICED = 0.08  # share of a voiced frame's energy given to noise (breathiness)


def _envelope(logmel: np.ndarray, cfg: MelConfig) -> tuple[np.ndarray, np.ndarray]:
    """(freqs, (T, F) linear power density) from (T, n_mels) log-mel: each band's power per unit
    filter weight, interpolated between band centres in log domain."""
    basis = mel_basis(cfg)
    freqs = librosa.fft_frequencies(sr=cfg.sample_rate, n_fft=cfg.n_fft)
    centres = (basis * freqs).sum(1) / basis.sum(1)
    density = logmel - np.log(basis.sum(1))[None, :]
    env = np.stack([np.interp(freqs, centres, d) for d in density])
    return freqs, np.exp(env)


def _frame_gain(target: np.ndarray, audio: np.ndarray, cfg: MelConfig, share: np.ndarray):
    """Per-frame amplitude gain so that `audio` carries `share` of the target mel energy."""
    got = np.exp(log_mel(audio, cfg)).sum(1)[: len(target)]
    got = np.pad(got, (0, len(target) - len(got)), mode="edge")
    want = np.exp(target).sum(1) * share
    return np.sqrt(want / np.maximum(got, 1e-10))


def _to_samples(per_frame: np.ndarray, hop: int, n: int) -> np.ndarray:
    t = np.arange(n) / hop
    return np.interp(t, np.arange(len(per_frame)), per_frame)


def synthesize(logmel: np.ndarray, f0: np.ndarray, cfg: MelConfig, seed: int = 0) -> np.ndarray:
    """Audio of T frames (T * hop samples) from (T, n_mels) log-mel and (T,) F0 (0 = unvoiced)."""
    hop, sr = cfg.hop_length, cfg.sample_rate
    n = len(logmel) * hop
    freqs, env = _envelope(logmel, cfg)
    voiced = f0 > 0
    rng = np.random.default_rng(seed)
    # Harmonics: phase follows the F0 track; amplitudes are the envelope at k·F0.
    f0_filled = np.where(voiced, f0, np.interp(np.arange(len(f0)), np.flatnonzero(voiced),
                                               f0[voiced]) if voiced.any() else 100.0)
    f0_s = _to_samples(f0_filled, hop, n)
    phase = 2 * np.pi * np.cumsum(f0_s) / sr
    harmonic = np.zeros(n)
    n_harm = int(cfg.fmax / max(f0_filled.min(), 50.0))
    for k in range(1, n_harm + 1):
        fk = k * f0_filled
        amp = np.sqrt([np.interp(f, freqs, e) for f, e in zip(fk, env, strict=True)])
        amp[fk >= cfg.fmax] = 0.0
        harmonic += _to_samples(amp, hop, n) * np.sin(k * phase)
    # Noise: white noise shaped by the envelope in the STFT domain.
    white = librosa.stft(rng.standard_normal(n).astype(np.float32), n_fft=cfg.n_fft,
                         hop_length=hop)[:, : len(env)]
    noise = librosa.istft(white * np.sqrt(env.T[:, : white.shape[1]]), hop_length=hop, length=n)
    v = voiced.astype(float)
    g_h = _frame_gain(logmel, harmonic, cfg, v * (1 - _NOISE_IN_VOICED) + 1e-6) * v
    g_n = _frame_gain(logmel, noise, cfg, 1 - v * (1 - _NOISE_IN_VOICED))
    audio = harmonic * _to_samples(g_h, hop, n) + noise * _to_samples(g_n, hop, n)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
