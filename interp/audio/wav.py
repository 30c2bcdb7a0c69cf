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
