"""Reading a user's audio file: mono float32, or a one-line error that says what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def read_audio(path: str | Path, error: type[ValueError] = ValueError) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of `path`. A missing file is FileNotFoundError; an
    unreadable or empty one is `error` (a ValueError; the instruments pass their own)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no audio file at {path}")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise error(f"{path}: cannot read it as audio ({exc}); give a valid wav file") from exc
    if audio.shape[0] == 0:
        raise error(f"{path}: the audio is empty")
    return audio.mean(1), int(sr)


def read_wav(path: str | Path, sr: int) -> np.ndarray:
    """Mono float32 audio of `path`, which must be at `sr` Hz (the codec's rate)."""
    audio, file_sr = read_audio(path)
    if file_sr != sr:
        raise ValueError(f"{path} is {file_sr} Hz; the codec needs {sr} Hz "
                         f"(convert with: sox {path} -r {sr} out.wav)")
    return audio


SILENCE_DBFS = -50.0  # a 25 ms frame quieter than this (RMS) holds no speech
FRAME_S = 0.025
CLIP_LEVEL = 0.999  # |sample| at or above this is clipped
MIN_PROMPT_S = 0.5
MIN_ACTIVE_S = 0.25


def active_seconds(audio: np.ndarray, sr: int, floor_dbfs: float = SILENCE_DBFS) -> float:
    """Seconds of `audio` in 25 ms frames whose RMS is above `floor_dbfs`."""
    n = max(1, int(FRAME_S * sr))
    x = np.asarray(audio, np.float32)
    frames = x[: len(x) // n * n].reshape(-1, n) if len(x) >= n else x[None]
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    return float((rms > 10 ** (floor_dbfs / 20)).sum() * frames.shape[1] / sr)


def clipped_share(audio: np.ndarray) -> float:
    """Fraction of samples at full scale (clipping)."""
    x = np.abs(np.asarray(audio, np.float32))
    return float((x >= CLIP_LEVEL).mean()) if x.size else 0.0


def check_prompt(audio: np.ndarray, sr: int, source: str = "prompt") -> None:
    """Refuse, in one line, a voice prompt that is too short or silent: the model would clone
    nothing and babble."""
    seconds = len(audio) / sr
    if seconds < MIN_PROMPT_S:
        raise ValueError(f"{source}: the prompt is {seconds:.2f} s long; give at least "
                         f"{MIN_PROMPT_S:g} s of the voice to clone (3 s is best)")
    if active_seconds(audio, sr) < MIN_ACTIVE_S:
        raise ValueError(f"{source}: the prompt is silent (less than {MIN_ACTIVE_S:g} s above "
                         f"{SILENCE_DBFS:g} dBFS); give a recording of the voice to clone")
