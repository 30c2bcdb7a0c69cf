"""Non-verbal events in the speaker's own voice: laughter and breath, by source–filter synthesis.

espeak-ng reading "ha ha ha" sounds like a word read aloud; a laugh is not that. Here a laugh is a
train of 3–6 voiced "ha" bursts: a breathy /h/ onset (shaped noise), then a glottal pulse train at a
pitch that rises and falls across the laugh around the speaker's own F0, through /a/ formants, with
jitter, shimmer and breathiness. A breath is a shaped inhalation noise. Both are deterministic in
their random generator.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

# /a/ formants (Hz) and bandwidths for an adult male tract; scaled up for a female speaker.
_FORMANTS = ((750.0, 90.0), (1250.0, 110.0), (2600.0, 170.0), (3400.0, 250.0))


def _resonator(x: np.ndarray, freq: float, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonator (Klatt), unit gain at DC."""
    r = np.exp(-np.pi * bw / sr)
    c, b = -r * r, 2 * r * np.cos(2 * np.pi * freq / sr)
    a = 1 - b - c
    return lfilter([a], [1, -b, -c], x)


def _vocal_tract(source: np.ndarray, sr: int, scale: float) -> np.ndarray:
    out = source
    for freq, bw in _FORMANTS:
        if freq * scale < sr / 2 - 200:
            out = _resonator(out, freq * scale, bw * scale, sr)
    return out


def _band_noise(n: int, lo: float, hi: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    sos = butter(4, [lo, min(hi, sr / 2 - 100)], btype="band", fs=sr, output="sos")
    return sosfilt(sos, rng.standard_normal(n))


def _glottal_source(f0: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Pulse train following the per-sample F0 track, with a -12 dB/octave spectral tilt."""
    f0 = f0 * (1 + 0.02 * rng.standard_normal(len(f0)).cumsum() / np.sqrt(len(f0)))  # jitter
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(sr / 2 / f0.max())
    k = np.arange(1, n_harm + 1)[:, None]
    return (np.sin(k * phase[None, :]) / k**2).sum(0)


def _envelope(n: int, attack: float, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    rise = np.clip(t / attack, 0, 1)
    return rise * np.exp(-3.0 * t / max(t[-1], 1e-3))


def _fade(x: np.ndarray, sr: int, ms: float = 6.0) -> np.ndarray:
    """Raised-cosine fade in and out, so that joins do not click."""
    n = min(int(sr * ms / 1000), len(x) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))
    x = x.copy()
    x[:n] *= ramp
    x[len(x) - n :] *= ramp[::-1]
    return x


def laughter(f0: float, sr: int, rng: np.random.Generator, female: bool) -> np.ndarray:
    """A laugh of 3–6 "ha" bursts around the speaker's median `f0` (Hz). Returns float32 audio."""
    n_bursts = int(rng.integers(3, 7))
    peak = rng.uniform(1.3, 1.7)
    scale = 1.17 if female else 1.0
    pieces = []
    for i in range(n_bursts):
        # Rising–falling pitch across the laugh; each burst falls slightly within itself.
        contour = 1 + (peak - 1) * np.sin(np.pi * (i + 0.5) / n_bursts)
        n_h = int(sr * rng.uniform(0.025, 0.045))
        n_v = int(sr * rng.uniform(0.07, 0.12))
        onset = _fade(_band_noise(n_h, 400, 3500, sr, rng) * np.linspace(0, 1, n_h) * 0.35, sr)
        track = f0 * contour * np.linspace(1.03, 0.95, n_v)
        voiced = _glottal_source(track, sr, rng)
        voiced = voiced + 0.25 * _band_noise(n_v, 300, 4000, sr, rng)  # breathy voice
        voiced = _fade(_vocal_tract(voiced, sr, scale) * _envelope(n_v, 0.012, sr), sr)
        shimmer = (0.8 ** i) * rng.uniform(0.85, 1.15)
        burst = np.concatenate([onset, voiced / (np.abs(voiced).max() + 1e-9)]) * shimmer
        gap = _fade(_band_noise(int(sr * rng.uniform(0.05, 0.10)), 500, 3000, sr, rng) * 0.02, sr)
        pieces += [burst, gap]
    audio = np.concatenate(pieces)
    return (0.6 * audio / (np.abs(audio).max() + 1e-9)).astype(np.float32)


def breath(sr: int, rng: np.random.Generator) -> np.ndarray:
    """An audible inhalation, 0.3–0.5 s of shaped noise with a rise–fall envelope."""
    n = int(sr * rng.uniform(0.3, 0.5))
    noise = _band_noise(n, 300, 2500, sr, rng)
    noise = _resonator(noise, 1100.0, 400.0, sr)
    env = np.sin(np.pi * np.arange(n) / n) ** 1.5
    audio = _fade(noise * env, sr)
    return (0.12 * audio / (np.abs(audio).max() + 1e-9)).astype(np.float32)
