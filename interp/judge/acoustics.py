"""Plain acoustic measurements for the acoustic judge: pitch track, median F0, voiced duration.

F0 per 10 ms frame (0 where unvoiced) from Praat, through the project's `interp.audio.pitch`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from interp.audio.pitch import f0_track

logger = logging.getLogger(__name__)

HOP_S = 0.01
PITCH_FLOOR = 60.0
PITCH_CEILING = 500.0


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


def pitch_track(x: np.ndarray, sr: int, floor: float = PITCH_FLOOR,
                ceiling: float = PITCH_CEILING) -> PitchTrack:
    """Pitch track of a mono signal, 10 ms frames (Praat, through `interp.audio.pitch`)."""
    dur = len(x) / sr
    if len(x) < int(3.0 / floor * sr):
        return PitchTrack(np.zeros(0), HOP_S, dur, "praat")
    _, f0 = f0_track(x, sr, time_step=HOP_S, floor=floor, ceiling=ceiling)
    return PitchTrack(np.nan_to_num(f0.astype(np.float64)), HOP_S, dur, "praat")
