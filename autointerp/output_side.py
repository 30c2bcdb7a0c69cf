"""What a latent does to the sound: its logit lens read through the per-code acoustic profile.

The logit lens (`Backbone.logit_lens`) gives the speech codes a latent's decoder direction
promotes and suppresses; `Backbone.code_profile()` says what each code sounds like (F0, voicing,
energy, spectral centroid and tilt: `interp.audio.code_profile`). Here the top `k` promoted codes,
weighted by the softmax of their logits, and the top `k` suppressed ones, weighted by the softmax
of their negated logits, become two weighted profiles; their difference, past the thresholds
below, becomes a sentence a person reads, e.g. "promotes higher-pitched voiced frames: +35% F0,
+6 dB over the codes it suppresses". This is computed from the model, not from examples: a direct
effect on the next speech token, ignoring the layers after the SAE's.

Thresholds (promoted minus suppressed):
- pitch: |ΔF0| ≥ 15% (≈ 2.4 semitones), when both sides are at least 30% voiced;
- loudness: |Δenergy| ≥ 6 dB;
- silence: the promoted codes are at least 25 dB under the code-book's loud reference (the
  energy of its 90th-percentile code) and under 30% voiced; they are then called silence;
- voicing: the promoted side is "voiced" at ≥ 60% voiced frames, "unvoiced" at ≤ 30%; a
  difference of ≥ 25 points is quoted;
- brightness: spectral centroid ≥ 40% higher (brighter) or ≥ 40% lower on the log scale
  (ratio ≤ 1/1.4, darker).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from interp.atomic import atomic_save
from interp.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

PITCH_PCT = 15.0
PITCH_MIN_VOICED = 0.3
LOUD_DB = 6.0
SILENCE_BELOW_DB = 25.0
LOUD_REFERENCE_PCT = 90
VOICED_MIN, UNVOICED_MAX = 0.6, 0.3
VOICING_POINTS = 25.0
BRIGHT_RATIO = 1.4
RENDER_CODES, RENDER_HOLD = 5, 4  # the top 5 codes, 4 tokens (160 ms) each: 0.8 s at 25 Hz


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def side_profile(profile, codes: np.ndarray, weights: np.ndarray) -> dict:
    """Weighted acoustic profile of `codes`: voicing, energy and tilt are weighted means; F0 and
    the spectral centroid geometric means (F0 weighted by weight × voicing, over voiced codes)."""
    r = profile.rows(codes)
    w = weights / weights.sum()
    wv = w * r["voiced"] * (r["f0_hz"] > 0)
    f0 = (float(np.exp((wv * np.log(np.maximum(r["f0_hz"], 1.0))).sum() / wv.sum()))
          if wv.sum() > 1e-3 else None)
    return {"f0_hz": None if f0 is None else round(f0, 1),
            "voiced": round(float((w * r["voiced"]).sum()), 3),
            "energy_db": round(float((w * r["energy_db"]).sum()), 2),
            "centroid_hz": round(float(np.exp((w * np.log(r["centroid_hz"])).sum())), 1),
            "tilt_db_oct": round(float((w * r["tilt_db_oct"]).sum()), 2)}


def deltas(up: dict, down: dict) -> dict:
    """Promoted minus suppressed; F0 and centroid as percentages (F0 also in semitones)."""
    pitch = (up["f0_hz"] is not None and down["f0_hz"] is not None
             and min(up["voiced"], down["voiced"]) >= PITCH_MIN_VOICED)
    ratio = up["f0_hz"] / down["f0_hz"] if pitch else None
    return {"f0_pct": None if ratio is None else round(100 * (ratio - 1), 1),
            "f0_semitones": None if ratio is None else round(12 * float(np.log2(ratio)), 2),
            "voiced_points": round(100 * (up["voiced"] - down["voiced"]), 1),
            "energy_db": round(up["energy_db"] - down["energy_db"], 2),
            "centroid_pct": round(100 * (up["centroid_hz"] / down["centroid_hz"] - 1), 1),
            "tilt_db_oct": round(up["tilt_db_oct"] - down["tilt_db_oct"], 2)}


def _signed(x: float, unit: str, digits: int = 0) -> str:
    return f"{'+' if x >= 0 else '−'}{abs(x):.{digits}f}{unit}"


def describe(up: dict, d: dict, loud_ref_db: float) -> str:
    """The sentence: what the promoted codes sound like next to the suppressed ones."""
    voicing = ("voiced" if up["voiced"] >= VOICED_MIN else
               "unvoiced" if up["voiced"] <= UNVOICED_MAX else "partly voiced")
    nums = []
    if up["energy_db"] <= loud_ref_db - SILENCE_BELOW_DB and up["voiced"] < UNVOICED_MAX:
        return (f"promotes silence (unvoiced, {_signed(d['energy_db'], ' dB')} against the codes "
                "it suppresses)")
    words = []
    if abs(d["energy_db"]) >= LOUD_DB:
        words.append("louder" if d["energy_db"] > 0 else "quieter")
    if d["f0_pct"] is not None:
        nums.append(_signed(d["f0_pct"], "% F0"))
        if abs(d["f0_pct"]) >= PITCH_PCT:
            words.append("higher-pitched" if d["f0_pct"] > 0 else "lower-pitched")
    bright = 1 + d["centroid_pct"] / 100
    if bright >= BRIGHT_RATIO or bright <= 1 / BRIGHT_RATIO:
        words.append("brighter" if bright > 1 else "darker")
        nums.append(_signed(d["centroid_pct"], "% spectral centroid"))
    if abs(d["voiced_points"]) >= VOICING_POINTS:
        nums.append(_signed(d["voiced_points"], " points voicing"))
    nums.append(_signed(d["energy_db"], " dB"))
    if not words and abs(d["voiced_points"]) < VOICING_POINTS:
        return (f"promotes {voicing} frames that sound much like the codes it suppresses "
                f"({', '.join(nums)})")
    return f"promotes {' '.join(words + [voicing])} frames: {', '.join(nums)} over the codes it " \
           "suppresses"


def output_sides(logits: torch.Tensor | np.ndarray, profile, k: int = 10) -> list[dict | None]:
    """Per latent (rows of its (d_sae, n_speech) logit-lens logits), the output-side entry of
    its evidence: {promoted_profile, suppressed_profile, deltas, text, codes}; all None when the
    backbone has no code profile. Special outputs after the codes (sos/eos/…) are left out."""
    if profile is None:
        return [None] * len(logits)
    x = np.asarray(torch.as_tensor(logits)[:, : profile.n_codes].float().cpu())
    k = min(k, x.shape[1])
    loud_ref = float(np.percentile(profile.energy_db, LOUD_REFERENCE_PCT))
    up_idx = np.argsort(-x, axis=1, kind="stable")[:, :k]
    down_idx = np.argsort(x, axis=1, kind="stable")[:, :k]
    out = []
    for row, ui, di in zip(x, up_idx, down_idx, strict=True):
        up = side_profile(profile, ui, _softmax(row[ui]))
        down = side_profile(profile, di, _softmax(-row[di]))
        d = deltas(up, down)
        out.append({"promoted_profile": up, "suppressed_profile": down, "deltas": d,
                    "text": describe(up, d, loud_ref),
                    "codes": {"promoted": ui.tolist(), "suppressed": di.tolist()},
                    "method": f"top-{k} logit-lens codes, softmax-weighted; code profile from "
                              f"the {profile.method}",
                    "wav": None})
    return out


def render_codes(codes: list[int], n_codes: int = RENDER_CODES, hold: int = RENDER_HOLD
                 ) -> list[int]:
    """The token sequence heard for a side: its first `n_codes` codes, each held `hold`
    tokens (a code repeated is how the model would sustain it)."""
    return [int(c) for c in codes[:n_codes] for _ in range(hold)]


def write_output_wavs(backbone, entry: dict, out: Path, latent: int) -> dict:
    """Render the promoted and the suppressed codes of an entry through the backbone into
    `clips/latent_XXXXX_out_{promoted,suppressed}.wav` (under `out`); sets and returns
    entry["wav"]."""
    wavs = {}
    for side in ("promoted", "suppressed"):
        audio = backbone.render(render_codes(entry["codes"][side]))
        rel = f"clips/latent_{latent:05d}_out_{side}.wav"
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, lambda f, a=audio: sf.write(f, np.asarray(a, np.float32), SAMPLE_RATE,
                                                     subtype="PCM_16"))
        wavs[side] = rel
    entry["wav"] = wavs
    return entry


def render_choice(backbone, density: dict[int, float], n: int) -> set[int]:
    """Which latents get output wavs: the `n` densest (all when n < 0, none when 0 or when the
    backbone cannot render or has no code profile)."""
    if n == 0 or not backbone.can_render() or backbone.code_profile() is None:
        return set()
    order = sorted(density, key=lambda lat: (-density[lat], lat))
    return set(order if n < 0 else order[:n])
