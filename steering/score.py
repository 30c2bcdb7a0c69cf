"""How far one output reached its target, and the one number that trades it against content:
the frontier's and the calibration's shared measures (`steering.frontier`'s docstring says how
each target is scored).
"""

from __future__ import annotations

import numpy as np

from steering.report import primary

SLOW_GOAL, FAST_GOAL = 2.0, 0.70  # voiced-duration ratios that count as full success
LENGTH_RANGE = (0.5, 2.0)  # voiced-duration ratio of a sane output (targets other than rate)
BABBLE_RISE = 0.5  # a WER rise above this is babble
RATE = ("slow", "fast")
GENDER = ("male", "female")


def scored(target: str, voice_gender: str | None) -> bool:
    """Whether an item counts toward a target: for male / female only the items prompted with a
    voice of the other gender (the rest are already there unsteered)."""
    return target not in GENDER or voice_gender != target


def _ratio(row: dict, base: dict) -> float | None:
    """Voiced duration of the output over the unsteered output's (None where unmeasurable)."""
    v, b = row.get("voiced_duration_s"), base.get("voiced_duration_s")
    return None if v is None or not b else v / b


def row_wer(row: dict, field: str = "wer") -> float:
    """The row's WER on `field`; an output too short to transcribe (None) counts 1."""
    w = row.get(field)
    return 1.0 if w is None else float(w)


def wer_decode(rows: list[dict]) -> tuple[str, str]:
    """(decode name, row field): the open-vocabulary decode when the recogniser has a word list
    and every transcribed row carries it, else the lexicon one (greedy without a lexicon)."""
    from interp.instruments.meter import asr_model

    rec = asr_model()
    if rec.wordlist is not None and all("wer_open" in r for r in rows if r.get("wer") is not None):
        return "open", "wer_open"
    return ("lexicon" if rec.lexicon is not None else "greedy"), "wer"


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def success(target: str, row: dict, base: dict) -> float:
    """The item's concept success in [0, 1] (the module docstring says how, per target)."""
    if target in RATE:
        r = _ratio(row, base)
        if r is None:
            return 0.0
        return _clip01((r - 1) / (SLOW_GOAL - 1) if target == "slow"
                       else (1 - r) / (1 - FAST_GOAL))
    v = row.get(primary(target))
    if v is None:
        return 0.0
    if target == "laughter":
        return float(v > 0.5)
    return 1.0 - v if target == "female" else float(v)


def harmonic(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """2ab / (a + b), 0 where both are 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = 2 * a * b / (a + b)
    return np.where(a + b > 0, h, 0.0)


def point_score(concept_success: np.ndarray | float, wer_rise: np.ndarray | float
                ) -> np.ndarray:
    """The harmonic mean of concept success and content kept, 1 − min(1, max(0, WER rise))."""
    return harmonic(concept_success, 1 - np.clip(wer_rise, 0, 1))


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return float(np.log(p / (1 - p)))


def graded(target: str, row: dict, base: dict) -> float | None:
    """A graded reading of how far the output moved toward the target, where `success` is
    flat (a target reached only past a strength, as gender's P(male) sits at 0.0001 below it):
    the instrument's log-odds toward the target (laughter P, P(male), 1 − P(male), a concept's
    P), or for rate the log of the voiced-duration ratio toward the target. None: unmeasured."""
    if target in RATE:
        r = _ratio(row, base)
        return None if r is None or r <= 0 else float(np.log(r) * (1 if target == "slow" else -1))
    v = row.get(primary(target))
    if v is None:
        return None
    return -_logit(v) if target == "female" else _logit(v)
