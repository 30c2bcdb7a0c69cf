"""Voiced duration and pitch: silero-vad speech time, Praat (parselmouth) voicing and median F0.

`speech_seconds` uses silero-vad (its weights ship inside the `silero-vad` wheel) when it is
installed; without it, it falls back to Praat's voiced-frame time and says so in the result.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache

import numpy as np
import torch

from interp.audio import SAMPLE_RATE
from interp.audio.pitch import f0_track

logger = logging.getLogger(__name__)

F0_STEP_S = 0.01


@lru_cache(maxsize=1)
def _silero():  # noqa: ANN202 - a TorchScript module
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        logger.warning("silero-vad is not installed (pip install silero-vad); voiced duration "
                       "falls back to Praat voicing")
        return None
    with warnings.catch_warnings():  # it loads a TorchScript file; torch warns about jit.load
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def vad_segments(audio: np.ndarray) -> list[tuple[float, float]] | None:
    """Speech segments (seconds) of 16 kHz audio by silero-vad; None when it is unavailable."""
    model = _silero()
    if model is None:
        return None
    from silero_vad import get_speech_timestamps

    with torch.no_grad():
        ts = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio, np.float32)),
                                   model, sampling_rate=SAMPLE_RATE, return_seconds=True)
    model.reset_states()
    return [(float(t["start"]), float(t["end"])) for t in ts]


def pitch_stats(audio: np.ndarray) -> dict:
    """Median F0 (Hz; None when nothing is voiced) and Praat voiced time of 16 kHz audio."""
    _, f0 = f0_track(audio, SAMPLE_RATE, F0_STEP_S)
    voiced = f0[f0 > 0]
    return {"median_f0_hz": round(float(np.median(voiced)), 2) if len(voiced) else None,
            "voiced_duration_f0_s": round(float(len(voiced) * F0_STEP_S), 3)}


def prosody(audio: np.ndarray) -> dict:
    """Duration, voiced duration (silero-vad speech time, else Praat voicing), median F0."""
    out = {"duration_s": round(len(audio) / SAMPLE_RATE, 3), **pitch_stats(audio)}
    segs = vad_segments(audio)
    if segs is None:
        out["voiced_duration_s"] = out["voiced_duration_f0_s"]
        out["voiced_duration_method"] = "praat-voicing"
    else:
        out["voiced_duration_s"] = round(float(sum(e - s for s, e in segs)), 3)
        out["voiced_duration_method"] = "silero-vad"
    return out
