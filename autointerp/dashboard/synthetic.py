"""A synthetic auto-interp layer folder that follows the contract of `python -m autointerp.run`
(latents.jsonl, evidence/, clips/, summary.json) and a steering summary: what the dashboard's
tests and benchmark build from. Not a demo mode: the CLI never reads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from interp.audio import SAMPLE_RATE

LABELS = ("laughter onset", "female voice pitch", "the word 'the'", "breath before a phrase",
          "fast speaking rate", "Scottish accent vowels", "sentence-final punctuation",
          "silence after a word", "plural -s suffix", "male voice low pitch")
WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "[laughter]", "laughed")


def _clip(path: Path, rng: np.random.Generator, f0: float) -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # 1 second
    wave = 0.3 * np.sin(2 * np.pi * f0 * t) * np.hanning(SAMPLE_RATE) + 0.02 * rng.standard_normal(SAMPLE_RATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), SAMPLE_RATE)


def _example(rng: np.random.Generator, latent: int, i: int, speech: bool, act: float,
             folder: Path, wav: bool = True) -> dict:
    """A text window, or a clip (its wav only when `wav`: beyond --n-clips there is none)."""
    ex = {"utt_id": f"utt{rng.integers(1000):04d}", "src_utt_id": f"src{i:03d}",
          "position": int(rng.integers(5, 150)), "modality": "speech" if speech else "text",
          "act": round(act, 4), "text": None, "clip": None}
    if speech:
        rel = f"clips/latent_{latent:05d}_{i:02d}.wav" if wav else None
        if rel is not None:
            _clip(folder / rel, rng, 120.0 + 20 * i)
        t0 = round(float(rng.uniform(0, 3)), 2)
        trace = [[round(t0 + j / 25, 3), round(act * float(np.exp(-((j - 12) / 4) ** 2)), 4)]
                 for j in range(25)]
        ex["clip"] = {"wav": rel, "t0": t0, "t1": t0 + 1.0, "trace": trace}
    else:
        tokens = [str(rng.choice(WORDS)) for _ in range(11)]
        acts = [round(act * float(np.exp(-((j - 5) / 2) ** 2)), 4) for j in range(11)]
        ex["text"] = {"tokens": tokens, "acts": acts, "center": 5}
    return ex


def _evidence(rng: np.random.Generator, latent: int, modality: str, max_act: float,
              folder: Path) -> dict:
    counts = np.sort(rng.integers(1, 400, 20))[::-1].tolist()
    groups = {"top": [max_act * (1 - 0.05 * i) for i in range(4)],
              "quantiles": [max_act * q for q in (0.5, 0.25)], "random": [max_act * 0.1]}
    ev: dict = {"latent": latent,
                "histogram": {"edges": np.linspace(0, max_act, 21).round(4).tolist(),
                              "counts": counts}}
    i = 0
    for group, acts in groups.items():
        ev[group] = []
        for act in acts:
            speech = modality == "audio" or (modality == "mixed" and i % 2 == 0)
            ev[group].append(_example(rng, latent, i, speech, float(act), folder,
                                      wav=group != "random"))
            i += 1
    def lens(sign: float) -> list:
        values = np.sort(rng.random(8))[::-1]
        return [[int(c), round(sign * float(v), 3)]
                for c, v in zip(rng.integers(0, 512, 8), values, strict=True)]

    ev["logit_lens"] = {"promoted": lens(1.0), "suppressed": lens(-1.0)}
    ev["output_side"] = _output_side(latent, folder)
    return ev


def _output_side(latent: int, folder: Path) -> dict:
    """An output side shaped like `autointerp.output_side`'s (no random draws: the other
    fields keep their values), with 0.8 s tones as the renderings of the two sides."""
    up, down = 120.0 + 10 * (latent % 8), 100.0

    def prof(f0: float, db: float) -> dict:
        return {"f0_hz": f0, "voiced": 0.9, "energy_db": db, "centroid_hz": 600.0,
                "tilt_db_oct": -6.0}

    pct = round(100 * (up / down - 1), 1)
    wav = {}
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for side, f0 in (("promoted", up), ("suppressed", down)):
        rel = f"clips/latent_{latent:05d}_out_{side}.wav"
        t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
        sf.write(folder / rel, (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32),
                 SAMPLE_RATE)
        wav[side] = rel
    return {"promoted_profile": prof(up, 12.0), "suppressed_profile": prof(down, 6.0),
            "deltas": {"f0_pct": pct, "f0_semitones": round(12 * float(np.log2(up / down)), 2),
                       "voiced_points": 0.0, "energy_db": 6.0, "centroid_pct": 0.0,
                       "tilt_db_oct": 0.0},
            "text": f"promotes louder higher-pitched voiced frames: +{pct:.0f}% F0, +6 dB over "
                    "the codes it suppresses",
            "codes": {"promoted": [latent % 512], "suppressed": [(latent + 1) % 512]},
            "method": "synthetic", "wav": wav}


def write_layer(folder: Path, n: int = 40, n_evidence: int = 12, seed: int = 0) -> Path:
    """`folder` (an `autointerp/layer_L/`) with `n` latents; the first `n_evidence` non-dead ones
    have evidence files (with real 1-second 16 kHz wav clips for speech examples)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    modalities = ("audio", "text", "mixed", "dead")
    lines, with_ev = [], 0
    for latent in range(n):
        modality = modalities[latent % 4] if latent < 40 else str(
            rng.choice(modalities, p=[0.3, 0.4, 0.2, 0.1]))
        dead = modality == "dead"
        max_act = 0.0 if dead else round(float(rng.uniform(1, 20)), 3)
        evidence = None
        if not dead and with_ev < n_evidence:
            evidence = f"evidence/latent_{latent:05d}.json"
            path = folder / evidence
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(_evidence(rng, latent, modality, max_act, folder)))
            with_ev += 1
        label = None if dead else f"{LABELS[latent % len(LABELS)]} #{latent}"
        auroc = None if dead else round(float(rng.uniform(0.4, 1.0)), 3)
        lines.append(json.dumps({
            "latent": latent, "density": 0.0 if dead else round(float(rng.random() * 0.05), 5),
            "max_act": max_act, "mean_act": round(max_act / 4, 3),
            "quantiles": [round(max_act * q, 3) for q in (0.2, 0.5, 0.8)], "modality": modality,
            "speech_frac": None if dead else {"audio": 0.95, "text": 0.05}.get(modality, 0.5),
            "label": label, "explanation": None if dead else f"Fires on {label}.",
            "explainer": "synthetic", "evidence": evidence,
            "scores": {"auroc": auroc, "balanced_accuracy": auroc and round(auroc - 0.05, 3),
                       "scorer": "detection"}}))
    (folder / "latents.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps(_summary([json.loads(x) for x in lines])))
    return folder


def _summary(rows: list[dict]) -> dict:
    """summary.json shaped like `python -m autointerp.run`'s (its figures made up), plus one key
    it does not write (the dashboard shows unknown top-level figures too)."""
    def auroc(m: str) -> dict:
        v = [r["scores"]["auroc"] for r in rows if r["scores"]["auroc"] is not None
             and m in ("all", r["modality"])]
        return {"mean": round(float(np.mean(v)), 4) if v else None,
                "median": round(float(np.median(v)), 4) if v else None, "n": len(v)}

    mods = ("text", "audio", "mixed", "all")
    return {"layer": 12, "n_latents": len(rows), "n_positions": 4000,
            "modality_counts": {m: sum(r["modality"] == m for r in rows)
                                for m in ("audio", "text", "mixed", "dead")},
            "auroc_by_modality": {m: auroc(m) for m in mods},
            "shuffled_control": {m: {"mean": 0.5, "median": 0.5, "n": 1} for m in mods},
            "paper_auroc_cosyvoice3": {"text": 0.921, "audio": 0.653, "mixed": 0.558},
            "planted_recall": {"concepts": [], "threshold": 0.9, "recall": 0.75,
                               "group_recall": 0.875, "group_size": 5, "random_recall": 0.0,
                               "mean_auroc": 0.93, "random_mean_auroc": 0.52},
            "settings": {"explainer": "synthetic"}, "timings": {"total_s": 1.0},
            "figures": ["figures.html"], "dead_frac": round(
                sum(r["modality"] == "dead" for r in rows) / max(len(rows), 1), 4)}


def write_steering(root: Path, layer: int, latents: list[int], concept: str = "laughter") -> Path:
    """`root/<concept>/summary.json` shaped like `python -m steering.run`'s."""
    path = root / concept / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"metric": "laughter_prob", "sae": 0.776, "decoder": 0.41, "diffmeans": 0.652,
           "random_latents": 0.01, "wer_change_points": 4.2,
           "goals": {"target_reached": False, "wer_rise_le_10": True}}
    path.write_text(json.dumps({
        "concept": concept, "out": str(root / concept), "n_items": 6,
        "sae": {"folder": f"runs/x/sae/layer_{layer}", "layer": layer, "latents": latents,
                "by_target": {concept: latents}},
        "strengths": [0, 2, 4], "results": [{"method": "sae", "strength": s, "target": concept,
                                             "laughter_prob": {"mean": 0.1 * s}} for s in range(9)],
        "effects": {concept: {"4": row}}, "config": {"seed": 0, "threads": 1},
        "seconds": 12.5}))
    return path
