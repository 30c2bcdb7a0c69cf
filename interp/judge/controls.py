"""Control prediction sets: Identity (output = input1) and Noise (seeded white noise).

MMAE's reference rows: Identity keeps consistency and fails instructions; Noise fails both. A
judge setup that does not reproduce that pattern is not to be trusted on real outputs.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from interp.judge.audio import to_mono
from interp.judge.format import parse_sample, read_records, resolve_path
from interp.judge.records import write_json_atomic

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.json"
MIN_NOISE_RMS = 0.05


def with_output(sample_raw: dict, audio_url: str) -> dict:
    """A prediction: the metadata sample with the assistant's output audio appended."""
    pred = copy.deepcopy(sample_raw)
    pred.setdefault("messages", []).append(
        {"role": "assistant", "content": [{"type": "audio", "audio_url": audio_url}]})
    return pred


def noise_like(x: np.ndarray, seed: int, key: str) -> np.ndarray:
    """White noise with x's length and RMS (at least MIN_NOISE_RMS), seeded by (seed, key)."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
    rng = np.random.default_rng(h)
    rms = float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0
    noise = rng.standard_normal(len(x)) * max(rms, MIN_NOISE_RMS)
    return np.clip(noise, -1.0, 1.0).astype(np.float32)


def write_controls(metadata: Path, audio_root: Path, out_dir: Path, seed: int = 0
                   ) -> dict[str, Path]:
    """Write `identity/predictions.json` and `noise/predictions.json` (+ noise wavs) in out_dir.

    Identity points at each sample's first input audio (path relative to audio_root, as in the
    metadata); Noise audio has the first input's length and sample rate, mono, and is referenced
    by absolute path. Returns {"identity": path, "noise": path}.
    """
    out_dir = Path(out_dir)
    (out_dir / "identity").mkdir(parents=True, exist_ok=True)
    (out_dir / "noise" / "wav").mkdir(parents=True, exist_ok=True)
    identity, noise = [], []
    for raw in read_records(Path(metadata)):
        sample = parse_sample(raw)
        first = sample.input_audios[0]
        identity.append(with_output(raw, first))
        x, sr = sf.read(str(resolve_path(first, (Path(audio_root),))), dtype="float32")
        wav = (out_dir / "noise" / "wav" / f"{sample.id}.wav").resolve()
        sf.write(str(wav), noise_like(to_mono(x), seed, sample.id), sr, subtype="PCM_16")
        noise.append(with_output(raw, str(wav)))
    paths = {"identity": out_dir / "identity" / PREDICTIONS_FILE,
             "noise": out_dir / "noise" / PREDICTIONS_FILE}
    write_json_atomic(paths["identity"], identity)
    write_json_atomic(paths["noise"], noise)
    logger.info("wrote identity and noise controls for %d samples in %s", len(identity), out_dir)
    return paths
