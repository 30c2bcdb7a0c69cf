"""Reading a user's wav for the codec: mono float32 at the codec's rate, or a one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def read_wav(path: str | Path, sr: int) -> np.ndarray:
    """Mono float32 audio of `path`, which must be at `sr` Hz; a missing, unreadable or
    mis-sampled file is a one-line error that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no wav file at {path}")
    try:
        audio, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ValueError(f"cannot read {path} as audio ({exc}); give a valid wav file") from exc
    if file_sr != sr:
        raise ValueError(f"{path} is {file_sr} Hz; the codec needs {sr} Hz "
                         f"(convert with: sox {path} -r {sr} out.wav)")
    if audio.shape[0] == 0:
        raise ValueError(f"{path}: the audio is empty")
    return audio.mean(1)
