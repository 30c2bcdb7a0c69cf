"""Audio loading, slicing and wav/base64 encoding for the judge, with small caches."""

from __future__ import annotations

import base64
import io
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

MIN_SLICE_S = 0.1  # an empty output slice is replaced by this much silence


@dataclass(frozen=True)
class AudioPart:
    """One labelled clip of a judge query: a whole file or its `[start:end]` slice (seconds)."""

    label: str  # "<audio output>", "<audio input1>", or with a slice "<audio output>[1.0:2.5]"
    path: str
    start: float | None = None
    end: float | None = None

    @property
    def is_slice(self) -> bool:
        return self.start is not None


def stamp(path: str) -> tuple[int, int]:
    """(mtime_ns, size) of a file: part of every cache key, so rewritten files are re-read."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def load_audio(path: str) -> tuple[np.ndarray, int]:
    """Read a sound file as float32, shape (T,) for mono or (T, C); cached (read-only array)."""
    return _load_audio(path, *stamp(path))


@lru_cache(maxsize=64)
def _load_audio(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, int]:
    data, sr = sf.read(path, dtype="float32", always_2d=False)
    data.setflags(write=False)
    return data, int(sr)


def to_mono(x: np.ndarray) -> np.ndarray:
    """(T,) or (T, C) → (T,)."""
    return x if x.ndim == 1 else x.mean(axis=1)


def cut(x: np.ndarray, sr: int, start: float | None, end: float | None) -> np.ndarray:
    """Samples of x between start and end seconds, clamped to the signal; never empty."""
    if start is None:
        return x
    i0 = max(0, int(round(start * sr)))
    i1 = len(x) if end is None else min(len(x), int(round(end * sr)))
    if i1 <= i0:
        logger.warning("slice [%s:%s] lies outside a %.2f s clip; using silence", start, end,
                       len(x) / sr)
        shape = (int(MIN_SLICE_S * sr),) + x.shape[1:]
        return np.zeros(shape, dtype=np.float32)
    return x[i0:i1]


def part_samples(part: AudioPart) -> tuple[np.ndarray, int]:
    """The samples of one clip (slice cut), shape (T,) or (T, C), and its sample rate."""
    x, sr = load_audio(part.path)
    return cut(x, sr, part.start, part.end), sr


def encode_wav(x: np.ndarray, sr: int) -> bytes:
    """16-bit PCM wav bytes of x."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def part_base64(part: AudioPart) -> str:
    """Base64 of the clip as a wav file (cut first when the part is a slice); cached."""
    return _part_base64(part, *stamp(part.path))


@lru_cache(maxsize=256)
def _part_base64(part: AudioPart, mtime_ns: int, size: int) -> str:
    x, sr = part_samples(part)
    return base64.b64encode(encode_wav(x, sr)).decode("ascii")


def content_part(part: AudioPart, style: str = "input_audio") -> dict:
    """The OpenAI chat content part carrying a clip: `input_audio` or data-URI `audio_url`."""
    b64 = part_base64(part)
    if style == "input_audio":
        return {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}
    if style == "audio_url":
        return {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{b64}"}}
    raise ValueError(f"unknown audio style {style!r}; use 'input_audio' or 'audio_url'")


def probe(path: Path) -> tuple[int, float]:
    """(sample rate, duration in s) of a sound file; raises on a missing or unreadable file."""
    info = sf.info(str(path))
    if info.samplerate <= 0 or info.frames <= 0:
        raise ValueError(f"{path}: empty audio ({info.frames} frames at {info.samplerate} Hz)")
    return int(info.samplerate), info.frames / info.samplerate


def clear_caches() -> None:
    """Forget cached audio (e.g. after files were rewritten in place)."""
    _load_audio.cache_clear()
    _part_base64.cache_clear()
