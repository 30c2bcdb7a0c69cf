"""Uncertainty of a figure: the mean and 95% interval every stage reports next to a headline."""

from __future__ import annotations

import math

import numpy as np


def mean_ci(values: list) -> dict:
    """Mean and normal-approximation 95% CI of the non-missing values."""
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(x):
        return {"mean": None, "ci95": [None, None], "n": 0}
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else 0.0
    m = float(x.mean())
    return {"mean": round(m, 4), "ci95": [round(float(m - half), 4), round(float(m + half), 4)],
            "n": len(x)}
