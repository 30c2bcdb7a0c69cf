"""Plain acoustic measurements for the acoustic judge: pitch track, median F0, voiced duration.

Praat (via `parselmouth`) is used when importable; otherwise a small numpy autocorrelation
tracker. Both give F0 per 10 ms frame, 0 where unvoiced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)

HOP_S = 0.01
PITCH_FLOOR = 60.0
PITCH_CEILING = 500.0


@lru_cache(maxsize=1)
def praat_available() -> bool:
    try:
        import parselmouth  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class PitchTrack:
    f0: np.ndarray  # (frames,) Hz, 0 = unvoiced
    hop_s: float
    duration_s: float
    method: str

    @property
    def voiced(self) -> np.ndarray:
        return self.f0[self.f0 > 0]

    @property
    def voiced_duration(self) -> float:
        return float(len(self.voiced) * self.hop_s)

    @property
    def voiced_fraction(self) -> float:
        return self.voiced_duration / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def median_f0(self) -> float:
        v = self.voiced
        return float(np.median(v)) if len(v) else float("nan")

    def summary(self) -> dict:
        return {"median_f0_hz": None if np.isnan(self.median_f0) else round(self.median_f0, 1),
                "voiced_s": round(self.voiced_duration, 3), "duration_s": round(self.duration_s, 3),
                "voiced_fraction": round(self.voiced_fraction, 3), "pitch_method": self.method}


def _praat_f0(x: np.ndarray, sr: int, floor: float, ceiling: float) -> np.ndarray:
    import parselmouth

    snd = parselmouth.Sound(x.astype(np.float64), sampling_frequency=sr)
    pitch = snd.to_pitch_ac(time_step=HOP_S, pitch_floor=floor, pitch_ceiling=ceiling)
    return np.nan_to_num(pitch.selected_array["frequency"].astype(np.float64))


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(T,) → (n_frames, size), zero-padded at the end."""
    n = max(1, 1 + (len(x) - size + hop - 1) // hop) if len(x) > size else 1
    pad = np.zeros((n - 1) * hop + size, dtype=np.float64)
    pad[: len(x)] = x
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return pad[idx]


def numpy_f0(
    x: np.ndarray, sr: int, floor: float = PITCH_FLOOR, ceiling: float = PITCH_CEILING,
    voicing_threshold: float = 0.5, silence_db: float = -30.0,
) -> np.ndarray:
    """F0 per 10 ms frame by normalised autocorrelation (Boersma-style window correction).

    A frame is voiced when its corrected autocorrelation peak in [1/ceiling, 1/floor] s exceeds
    `voicing_threshold` and its energy is within `silence_db` of the loudest frame.
    """
    size = int(round(3.0 / floor * sr))  # three periods of the lowest pitch
    hop = max(1, int(round(HOP_S * sr)))
    fr = _frames(x.astype(np.float64), size, hop)
    fr = fr - fr.mean(axis=1, keepdims=True)
    win = np.hanning(size)
    nfft = 1 << int(np.ceil(np.log2(2 * size)))
    ac = np.fft.irfft(np.abs(np.fft.rfft(fr * win, nfft)) ** 2, nfft)[:, :size]
    wac = np.fft.irfft(np.abs(np.fft.rfft(win, nfft)) ** 2, nfft)[:size]
    energy = ac[:, 0]
    r = ac / np.maximum(energy[:, None], 1e-12) / np.maximum(wac / wac[0], 1e-3)[None, :]
    lo, hi = int(np.floor(sr / ceiling)), min(int(np.ceil(sr / floor)), size // 2)
    seg = r[:, lo:hi]
    k = np.argmax(seg, axis=1)
    peak = seg[np.arange(len(seg)), k]
    lag = (k + lo).astype(np.float64)
    # parabolic interpolation around the peak
    i = np.clip(k + lo, 1, size - 2)
    a, b, c = r[np.arange(len(r)), i - 1], r[np.arange(len(r)), i], r[np.arange(len(r)), i + 1]
    den = a - 2 * b + c
    lag = lag + np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    loud = 10 * np.log10(np.maximum(energy, 1e-20) / max(energy.max(), 1e-20)) > silence_db
    voiced = (peak > voicing_threshold) & loud & (energy > 1e-8)
    return np.where(voiced, sr / np.maximum(lag, 1.0), 0.0)


def pitch_track(x: np.ndarray, sr: int, method: str = "auto", floor: float = PITCH_FLOOR,
                ceiling: float = PITCH_CEILING) -> PitchTrack:
    """Pitch track of a mono signal; method 'auto' (Praat if importable), 'praat' or 'numpy'."""
    if method == "auto":
        method = "praat" if praat_available() else "numpy"
    dur = len(x) / sr
    if len(x) < int(3.0 / floor * sr):
        return PitchTrack(np.zeros(0), HOP_S, dur, method)
    if method == "praat":
        f0 = _praat_f0(x, sr, floor, ceiling)
    elif method == "numpy":
        f0 = numpy_f0(x, sr, floor, ceiling)
    else:
        raise ValueError(f"unknown pitch method {method!r}; use auto, praat or numpy")
    return PitchTrack(f0, HOP_S, dur, method)
