"""Calibration figures for the instruments' probabilities: expected calibration error and
temperature scaling."""

from __future__ import annotations

import numpy as np


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of binary probabilities P(label = 1), equal-width bins over
    the confidence of the predicted class."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, int)
    conf = np.where(probs >= 0.5, probs, 1 - probs)
    correct = (probs >= 0.5).astype(int) == labels
    edges = np.linspace(0.5, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 1.0,
                    hi: float = 20.0) -> float:
    """The temperature T in [lo, hi] minimising the NLL of sigmoid(logit / T).

    The floor of 1 (never sharpen) matters: on a separable calibration set the NLL-optimal T
    tends to 0, which would turn every probability into 0 or 1.
    """
    z, y = np.asarray(logits, float), np.asarray(labels, float)

    def nll(t: float) -> float:
        s = z / t
        return float(np.mean(np.logaddexp(0, s) - y * s))

    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 200))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = np.clip(best * np.exp(np.linspace(-0.05, 0.05, 41)), lo, hi)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(z, float)))
