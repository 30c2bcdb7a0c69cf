"""What a latent does when it is turned up: steer it alone and listen (the output side's second,
causal half; `--n-intervene`, off by default, meant for a few latents).

For each chosen latent, the SAE's decoder row times `strength` × the latent's largest activation
on the store is added to the residual at the SAE's hook on every speech position (prompt and
generated), while the backbone speaks `n` held-out sentences in held-out voices
(`interp.models.evaluate.heldout_plan`), with the same sampling seed as the unsteered
generations. The instruments (`interp.instruments.measure`: Praat F0, silero-vad / Praat voiced
time, the laughter detector, the recogniser's WER) listen to both; the differences, averaged over
the sentences, are kept in the evidence JSON as `intervention` with a sentence such as
"turned up alone (+4× its max activation, 3 sentences): F0 +12%, duration −0.30 s, laughter
+0.02, WER +5 points". Needs a backbone that renders and the shipped instruments.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from interp.audio import SAMPLE_RATE
from interp.hooks.intervene import Intervention, intervene, modality_positions
from interp.models.evaluate import EvalConfig, heldout_plan
from interp.models.generate import SamplingConfig

log = logging.getLogger(__name__)

MIN_AUDIO_S = 0.1  # shorter generations are not measured


def listen(audio: np.ndarray, text: str) -> dict:
    """The readings the intervention score compares (None where there is too little audio)."""
    out = {"duration_s": round(len(audio) / SAMPLE_RATE, 3), "median_f0_hz": None,
           "voiced_duration_s": None, "laughter": None, "wer": None}
    if len(audio) < MIN_AUDIO_S * SAMPLE_RATE:
        return out
    from interp.instruments import measure

    m = measure(audio, SAMPLE_RATE, ref_text=text, skip=("gender",))
    out.update({k: m.get(k) for k in ("median_f0_hz", "voiced_duration_s", "laughter")})
    out["wer"] = m.get("wer_corrected", m.get("wer"))
    return out


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def compare(base: list[dict], steered: list[dict]) -> dict:
    """Mean differences steered − unsteered over the sentences (F0 as a percentage)."""
    f0 = [100 * (s["median_f0_hz"] / b["median_f0_hz"] - 1)
          if s["median_f0_hz"] and b["median_f0_hz"] else None
          for b, s in zip(base, steered, strict=True)]

    def diff(key: str, scale: float = 1.0) -> float | None:
        return _mean([scale * (s[key] - b[key]) if s[key] is not None and b[key] is not None
                      else None for b, s in zip(base, steered, strict=True)])

    out = {"f0_pct": _mean(f0), "duration_s": diff("duration_s"),
           "voiced_duration_s": diff("voiced_duration_s"), "laughter": diff("laughter"),
           "wer_points": diff("wer", 100.0)}
    return {k: None if v is None else round(v, 3) for k, v in out.items()}


def _signed(v: float, fmt: str) -> str:
    return f"{'+' if v >= 0 else '−'}{format(abs(v), fmt)}"


def describe(d: dict, strength: float, n: int) -> str:
    """The sentence of an intervention score."""
    parts = []
    if d["f0_pct"] is not None:
        parts.append(f"F0 {_signed(d['f0_pct'], '.0f')}%")
    if d["duration_s"] is not None:
        parts.append(f"duration {_signed(d['duration_s'], '.2f')} s")
    if d["laughter"] is not None:
        parts.append(f"laughter {_signed(d['laughter'], '.2f')}")
    if d["wer_points"] is not None:
        parts.append(f"WER {_signed(d['wer_points'], '.0f')} points")
    return (f"turned up alone (+{strength:g}× its max activation, {n} sentence"
            f"{'s' * (n != 1)}): {', '.join(parts) or 'nothing measurable'}")


class Intervener:
    """Unsteered generations of the plan once, then one steered set per latent."""

    def __init__(self, backbone, sae, hook: str, corpus: str, n: int, strength: float,
                 seed: int = 0) -> None:
        if not backbone.can_render():
            raise ValueError(f"--n-intervene needs waveforms: {backbone.render_missing()}")
        self.backbone, self.hook, self.strength, self.seed = backbone, hook, strength, seed
        self.w_dec = sae.W_dec.detach().float()
        self.plan = [(text, voice) for text, voice, _, _ in
                     heldout_plan(EvalConfig(corpus=corpus, n=n, seed=seed), backbone)]
        self.base = [self.speak(i, text, voice, None) for i, (text, voice) in
                     enumerate(tqdm(self.plan, desc="intervene: unsteered", unit="sentence"))]

    @torch.no_grad()
    def speak(self, i: int, text: str, voice: str, vec: torch.Tensor | None) -> dict:
        req = self.backbone.request(text, voice)
        ivs = [] if vec is None else [Intervention(
            self.hook, lambda x: x + vec.to(x.device, x.dtype),
            modality_positions(req.modality, keep="speech", beyond="speech"))]
        with intervene(self.backbone.model, ivs):
            toks = self.backbone.generate(req.text_ids, req.prompt, req.n_text,
                                          replace(SamplingConfig(), seed=self.seed + i))
        audio = self.backbone.render(toks, voice) if toks else np.zeros(0, np.float32)
        return listen(audio, text) | {"n_tokens": len(toks)}

    def score(self, latent: int, max_act: float) -> dict:
        vec = self.strength * max_act * self.w_dec[latent]
        steered = [self.speak(i, text, voice, vec) for i, (text, voice) in enumerate(self.plan)]
        d = compare(self.base, steered)
        return {"strength": self.strength, "max_act": round(max_act, 4), "hook": self.hook,
                "n_sentences": len(self.plan), "deltas": d,
                "text": describe(d, self.strength, len(self.plan)),
                "unsteered": self.base, "steered": steered}
