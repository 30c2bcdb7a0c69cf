"""What each speech code sounds like: a per-code acoustic profile of the codec.

Computed from the code-book itself, no corpus and no rendering: a k-means centroid is the mean of
its members' features, and the features are an affine map of [log-mel, log-F0, voiced] per 10 ms
frame, so un-standardising a centroid gives, per frame of the code, its members' mean log-mel,
their voiced share and their mean log-F0 (unvoiced members sit at the neutral log 140 Hz, which
the voiced share lets us take back out). From those:

- `voiced`: voicing probability, the share of the code's frames that were voiced (0..1);
- `f0_hz`: mean F0 of the voiced frames (geometric, Hz); 0 where under 5% of frames are voiced;
- `energy_db`: mean frame energy, 10·log10 of the mel power summed over bands (the codec's
  log-mel scale: a silent frame at the mel floor is about −31 dB, speech lies well above);
- `centroid_hz`: spectral centroid of the mean mel power spectrum;
- `tilt_db_oct`: spectral tilt, the least-squares slope of band power (dB) over log2 frequency
  from 100 Hz up, in dB per octave (more negative = darker, more positive = brighter/hissier).

Milliseconds for 512 codes, so it is computed on the fly (`SpeechCodec` → `codebook_profile`).
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

FIELDS = ("f0_hz", "voiced", "energy_db", "centroid_hz", "tilt_db_oct")
MIN_VOICED = 0.05  # below this voiced share a code has no F0
NEUTRAL_LOG_F0 = float(np.log(140.0))  # where the codec puts unvoiced frames' log-F0
TILT_FROM_HZ = 100.0


@dataclass(frozen=True)
class CodeProfile:
    """One row per speech code (arrays of length n_codes), and how it was computed."""

    f0_hz: np.ndarray
    voiced: np.ndarray
    energy_db: np.ndarray
    centroid_hz: np.ndarray
    tilt_db_oct: np.ndarray
    method: str = "codebook"

    @property
    def n_codes(self) -> int:
        return len(self.f0_hz)

    def rows(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        return {f: getattr(self, f)[codes] for f in FIELDS}

    def to_dict(self) -> dict:
        return {"method": self.method, "n_codes": self.n_codes,
                **{f: [round(float(v), 3) for v in getattr(self, f)] for f in FIELDS}}


def spectrum_stats(logmel: np.ndarray, sample_rate: int, fmin: float, fmax: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy dB, spectral centroid Hz, tilt dB/octave) of (N, T, n_mels) natural-log mel power
    frames, each over its T frames: energy is the mean frame energy, centroid and tilt those of
    the mean power spectrum."""
    n_mels = logmel.shape[-1]
    freqs = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]
    power = np.exp(logmel.astype(np.float64))  # (N, T, n_mels)
    energy = (10 * np.log10(power.sum(-1))).mean(-1)
    spec = power.mean(1)  # (N, n_mels)
    centroid = (spec * freqs).sum(-1) / spec.sum(-1)
    keep = freqs >= max(TILT_FROM_HZ, fmin)
    x = np.log2(freqs[keep])
    y = 10 * np.log10(spec[:, keep])
    xc = x - x.mean()
    tilt = (y - y.mean(-1, keepdims=True)) @ xc / (xc @ xc)
    return energy, centroid, tilt


def codebook_profile(codec) -> CodeProfile:
    """The profile of every code of a `SpeechCodec`, from its centroids (see the module doc)."""
    cfg = codec.cfg
    n_mels = cfg.mel.n_mels
    raw = codec.codebook()  # (K, stack, n_mels + 2)
    p = np.clip(raw[..., n_mels + 1], 0.0, 1.0)  # (K, stack) voiced share per frame slot
    lf0 = raw[..., n_mels]  # mean log-F0, unvoiced members at the neutral value
    voiced = p.mean(1)
    # sum over slots of (voiced share × voiced members' mean log-F0) = lf0 − (1 − p)·neutral
    num = (lf0 - (1 - p) * NEUTRAL_LOG_F0).sum(1)
    den = p.sum(1)
    f0 = np.where(voiced >= MIN_VOICED,
                  np.exp(np.clip(num / np.maximum(den, 1e-6), np.log(40.0), np.log(600.0))), 0.0)
    energy, centroid, tilt = spectrum_stats(raw[..., :n_mels], cfg.mel.sample_rate,
                                            cfg.mel.fmin, cfg.mel.fmax)
    return CodeProfile(f0.astype(np.float32), voiced.astype(np.float32),
                       energy.astype(np.float32), centroid.astype(np.float32),
                       tilt.astype(np.float32))
