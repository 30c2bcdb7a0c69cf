"""Voice measures of `interp.models.evaluate`: does the output sound like its prompt speaker?

Within a gender, beyond it: pitch following (the output's F0 against the prompt speaker's over the
plan's voices, against voice-shuffled prompts) and speaker identification by an MFCC fingerprint
(`interp.audio.voice`), with the espeak references as its ceiling.
"""

from __future__ import annotations

import math

import numpy as np

from interp.audio.voice import identify
from interp.models.eval_plan import RATES
from interp.stats import mean_ci


def _semitones(hz: float) -> float:
    return 12 * math.log2(hz / 100.0)


def pitch_following(rows: list[dict], n_shuffles: int = 2000, seed: int = 0) -> dict | None:
    """Does the output's pitch follow the prompt speaker's beyond their gender? Over the plan's
    voices, the output's median F0 (semitones, averaged over a voice's sentences and rates) against
    the prompt speaker's, both centred on their gender's mean: Pearson r, and how often prompts
    shuffled among voices of the same gender correlate as well (`p_shuffled`). Per sample, the
    distance to its own prompt's F0 against the mean distance to the other same-gender voices'
    (`other_minus_own_st` > 0: closer to its own speaker than to others of that gender)."""
    samples = [(r["voice"], r["gender"], _semitones(r["prompt_f0"]),
                float(np.mean([_semitones(r[k]["f0"]) for k in RATES if r[k].get("f0")])))
               for r in rows if r.get("prompt_f0") and any(r[k].get("f0") for k in RATES)]
    prompt = {v: (g, p) for v, g, p, _ in samples}
    genders = sorted({g for g, _ in prompt.values()})
    if len(prompt) < 4 or any(sum(g == x for g, _ in prompt.values()) < 2 for x in genders):
        return None  # too few voices per gender to say anything
    voices = sorted(prompt)
    out = np.array([np.mean([o for v, _, _, o in samples if v == voice]) for voice in voices])
    gender = np.array([prompt[v][0] for v in voices])
    given = np.array([prompt[v][1] for v in voices])

    def centred(x: np.ndarray) -> np.ndarray:
        return x - np.array([x[gender == g].mean() for g in gender])

    def r_of(p: np.ndarray) -> float:
        a, b = centred(p), centred(out)
        return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum() + 1e-12))

    r = r_of(given)
    rng = np.random.default_rng(seed)
    shuffled = given.copy()
    as_good = 0
    for _ in range(n_shuffles):
        for g in genders:
            idx = np.flatnonzero(gender == g)
            shuffled[idx] = rng.permutation(given[idx])
        as_good += r_of(shuffled) >= r
    own = [abs(o - p) for _, _, p, o in samples]
    other = [float(np.mean([abs(o - q) for w, (h, q) in prompt.items() if h == g and w != v]))
             for v, g, _, o in samples]
    return {"n_voices": len(voices), "n_samples": len(samples), "r_within_gender": round(r, 3),
            "p_shuffled": round((as_good + 1) / (n_shuffles + 1), 4),
            "prompt_spread_st": round(float(centred(given).std()), 2),
            "output_spread_st": round(float(centred(out).std()), 2),
            "offset_st": round(float(np.mean([o - p for _, _, p, o in samples])), 2),
            "own_prompt_st": round(float(np.mean(own)), 2),
            "other_prompt_st": round(float(np.mean(other)), 2),
            "other_minus_own_st": mean_ci([b - a for a, b in zip(own, other, strict=True)]),
            # per voice: gender, prompt and mean output F0 in semitones re 100 Hz (for a plot)
            "per_voice": {v: [g, round(float(p), 2), round(float(o), 2)]
                          for v, g, p, o in zip(voices, gender, given, out, strict=True)}}


def voice_identification(rows: list[dict]) -> dict | None:
    """Is each output (normal rate) nearest, by the MFCC fingerprint (`interp.audio.voice`), to
    its own prompt among the plan's prompts of that gender? Beside it, the same for the espeak
    reference of each sentence after the codec round trip, spoken by one of the plan's voices (the
    held-out plan): how well the fingerprint tells these voices apart at all."""
    enrolled = {r["voice"]: r["prompt_embedding"] for r in rows if r.get("prompt_embedding")}
    gender = {r["voice"]: r["gender"] for r in rows}
    if len(enrolled) < 2:
        return None
    same = {v: [w for w in enrolled if gender[w] == gender[v]] for v in enrolled}

    def queries(key, who) -> list:
        return [(e, same[v], v) for r in rows if (e := key(r)) and (v := who(r)) in enrolled
                and len(same[v]) > 1]

    outputs = queries(lambda r: r["normal"].get("voice_embedding"), lambda r: r["voice"])
    refs = queries(lambda r: r.get("reference_embedding"), lambda r: r.get("reference_voice"))
    return {"outputs": identify(outputs, enrolled),
            "espeak_references": identify(refs, enrolled) if refs else None}
