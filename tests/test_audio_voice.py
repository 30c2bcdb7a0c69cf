"""The MFCC speaker fingerprint tells synthetic voices apart, and identification scores it."""

from __future__ import annotations

import numpy as np
import pytest

from interp.audio.voice import identify, voice_embedding

SR = 16000


def _voice(f0: float, formant: float, seconds: float, seed: int) -> np.ndarray:
    """A buzz at `f0` through one resonance at `formant` Hz, with a little jitter and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    harmonics = sum(np.sin(k * phase) * np.exp(-(((k * f0) - formant) / 400) ** 2)
                    for k in range(1, 40))
    return (0.3 * harmonics / np.abs(harmonics).max() + 0.003 * rng.standard_normal(len(t))
            ).astype(np.float32)


def test_fingerprint_identifies_its_speaker():
    voices = {"a": (110, 700), "b": (120, 1500), "c": (115, 2500)}
    enrolled = {v: voice_embedding(_voice(*p, 1.5, seed=0)) for v, p in voices.items()}
    assert all(len(e) == 38 for e in enrolled.values())
    queries = [(voice_embedding(_voice(*p, 1.0, seed=s)), list(voices), v)
               for v, p in voices.items() for s in (1, 2, 3)]
    r = identify(queries, enrolled)
    assert r == {"accuracy": 1.0, "chance": pytest.approx(1 / 3, abs=1e-4), "n": 9}
    # a wrong label on every query: nothing is found
    wrong = [(e, c, {"a": "b", "b": "c", "c": "a"}[v]) for e, c, v in queries]
    assert identify(wrong, enrolled)["accuracy"] == 0.0
    assert identify([], enrolled)["accuracy"] is None


def test_fingerprint_of_nothing_is_none():
    assert voice_embedding(np.zeros(SR, np.float32)) is None
    assert voice_embedding(np.ones(100, np.float32)) is None


def test_voice_identification_of_an_evaluation():
    """evaluate's figure: outputs against the prompts of their gender, with the espeak references
    (spoken by plan voices) as the fingerprint's ceiling; another gender is never a candidate."""
    from interp.models.eval_voice import voice_identification

    prompts = {"f1": [1.0, 0, 0], "f2": [0, 1.0, 0], "m1": [0, 0, 1.0], "m2": [1.0, 1.0, 0]}
    gender = {"f1": "female", "f2": "female", "m1": "male", "m2": "male"}
    rows = [{"voice": v, "gender": gender[v], "prompt_embedding": e,
             "normal": {"voice_embedding": [x + 0.01 for x in e]},
             "reference_voice": "f1", "reference_embedding": prompts["f2"]}
            for v, e in prompts.items()]
    r = voice_identification(rows)
    assert r["outputs"] == {"accuracy": 1.0, "chance": 0.5, "n": 4}
    assert r["espeak_references"]["accuracy"] == 0.0  # the references sound like f2, not f1
    assert voice_identification(rows[:1]) is None
