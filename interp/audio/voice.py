"""A speaker fingerprint for "does the output sound like the prompt speaker?": MFCC statistics.

The mean and spread of MFCCs 1–19 over the speech frames of an utterance: the classic text-
independent speaker representation (before i-vectors), which captures the vocal-tract colour
(espeak's voice variant), pitch range and accent a voice keeps from sentence to sentence. No
weights, so nothing to train or download; `identify` says how often an utterance is nearest to
its own speaker's prompt among candidates of the same gender.
"""

from __future__ import annotations

import librosa
import numpy as np

from interp.audio import SAMPLE_RATE

N_MFCC = 20  # coefficient 0 (loudness) is dropped


def voice_embedding(audio: np.ndarray, sr: int = SAMPLE_RATE) -> list[float] | None:
    """Mean and standard deviation of MFCCs 1–19 over frames within 30 dB of the loudest; None
    for audio under 0.2 s or silent."""
    audio = np.asarray(audio, np.float32)
    if len(audio) < 0.2 * sr or not np.any(audio):
        return None
    mfcc = librosa.feature.mfcc(y=audio, sr=sr, n_mfcc=N_MFCC, n_fft=512, hop_length=sr // 100,
                                n_mels=40)
    rms = librosa.feature.rms(y=audio, frame_length=512, hop_length=sr // 100)[0][: mfcc.shape[1]]
    speech = mfcc[1:, rms >= rms.max() * 10 ** (-30 / 20)]
    return [round(float(x), 3) for x in np.concatenate([speech.mean(1), speech.std(1)])]


def identify(queries: list[tuple[list[float], list[str], str]],
             enrolled: dict[str, list[float]]) -> dict:
    """Speaker identification by cosine similarity: each query (embedding, candidate speakers,
    true speaker) is assigned the nearest enrolled candidate. Embeddings are standardised per
    dimension over everything given, so no coefficient dominates. Returns accuracy, chance (the
    mean of 1 / number of candidates) and n."""
    if not queries:
        return {"accuracy": None, "chance": None, "n": 0}
    names = sorted(enrolled)
    everything = np.array([q for q, _, _ in queries] + [enrolled[n] for n in names])
    mu, sd = everything.mean(0), everything.std(0) + 1e-6

    def unit(x) -> np.ndarray:
        z = (np.asarray(x) - mu) / sd
        return z / (np.linalg.norm(z) + 1e-12)

    ref = {n: unit(enrolled[n]) for n in names}
    hits = []
    for q, cands, true in queries:
        z = unit(q)
        hits.append(max(cands, key=lambda c: float(z @ ref[c])) == true)
    return {"accuracy": round(float(np.mean(hits)), 4),
            "chance": round(float(np.mean([1 / len(c) for _, c, _ in queries])), 4),
            "n": len(queries)}
