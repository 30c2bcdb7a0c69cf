"""Fundamental frequency (F0) and voicing, measured with Praat (parselmouth)."""

from __future__ import annotations

import numpy as np
import parselmouth

PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 450.0


def f0_track(audio: np.ndarray, sr: int, time_step: float = 0.01, floor: float = PITCH_FLOOR_HZ,
             ceiling: float = PITCH_CEILING_HZ) -> tuple[np.ndarray, np.ndarray]:
    """(times, f0) with f0 = 0 on unvoiced frames."""
    sound = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=sr)
    pitch = sound.to_pitch(time_step=time_step, pitch_floor=floor, pitch_ceiling=ceiling)
    return pitch.xs(), pitch.selected_array["frequency"]


def median_f0(audio: np.ndarray, sr: int) -> float:
    """Median F0 over voiced frames in Hz; NaN when nothing is voiced."""
    _, f0 = f0_track(audio, sr)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else float("nan")


def voiced_duration(audio: np.ndarray, sr: int, time_step: float = 0.01) -> float:
    """Seconds of voiced speech (frames where Praat finds a pitch)."""
    _, f0 = f0_track(audio, sr, time_step)
    return float((f0 > 0).sum() * time_step)


def frame_f0(audio: np.ndarray, sr: int, hop: int, n_frames: int) -> np.ndarray:
    """F0 (Hz, 0 = unvoiced) at the centres of `n_frames` STFT frames (frame t at t·hop/sr s)."""
    times, f0 = f0_track(audio, sr, time_step=hop / sr)
    if len(times) == 0:
        return np.zeros(n_frames, np.float32)
    centres = np.arange(n_frames) * hop / sr
    idx = np.clip(np.round((centres - times[0]) / (hop / sr)).astype(int), 0, len(f0) - 1)
    out = f0[idx]
    out[(centres < times[0] - hop / sr) | (centres > times[-1] + hop / sr)] = 0.0
    return out.astype(np.float32)
