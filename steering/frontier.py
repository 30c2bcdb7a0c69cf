"""`python -m steering.frontier --concept laughter|gender|rate|<yours> [--methods …] [--strengths …] [--n 50]`

The concept–content frontier (AxBench-style): every method swept over a range of strengths on N
held-out sentences × voices, through the one steering engine (`steering.experiment`: the same
units, keys, wavs and rows as `steering.run`, so a killed run resumes and a `steering.run` folder
of the same concept, SAE and settings is reused by key). At every (target, method, strength)
point, over the items:

    concept_success  the target's instrument, per item in [0, 1] and averaged: laughter
                     P > 0.5 (0 or 1); male P(male), female 1 − P(male), on the items whose
                     prompt voice is of the other gender only (the others start there); slow
                     min(1, (r − 1) / (2.0 − 1)) and fast min(1, (1 − r) / (1 − 0.70)), clipped
                     at 0, where r is the item's voiced duration over its unsteered output's
                     (the goals: twice as long, 0.70 as long); a concept of your own its
                     classifier's P(positive group). An output too short to measure fails (0).
    wer_rise         WER of the output minus WER of the unsteered output of the same item, both
                     against the sentence, from the recogniser's open-vocabulary decode when it
                     ships a word list, else its lexicon one (frontier_summary.json says which);
                     an output too short to transcribe has WER 1
    voice_kept       cosine of the output's and the unsteered output's speaker fingerprints (MFCC
                     statistics, interp.audio.voice, or a local speaker model given as
                     --instruments speaker=DIR; interp.instruments.speaker), standardised per
                     dimension over every output of the run as speaker identification does:
                     1 = the same voice, about 0 = another
    length_ok        share of items whose voiced duration is within [0.5, 2.0]× the unsteered
                     one (null for the rate targets, whose goal is the duration)
    babble           share of items whose WER rose by more than 0.5

One number per method and target: the best over strengths of the harmonic mean of
concept_success and content kept (1 − min(1, max(0, wer_rise))) — 1 is the target reached with
every word kept, 0 either never reached or every word lost — with a 95% bootstrap CI (resample the
items, recompute every strength's means and take the best again). Strength 0 is the unsteered
output (every method's curve starts there); the prompt method (the model asked its own way) is
one point. Writes frontier.json ({target: {method: {score, ci95, best_strength, points}}}),
frontier.html (concept success against WER rise, a curve per method, a panel per target),
frontier_summary.json (how each number was made; `paired`: each SAE method's best score minus
the best difference of means', with a CI from resampling the items once for both) and prints a
method × target table. A run of
some methods into a folder that holds others keeps their entries (`kept_from_earlier_runs`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from interp.atomic import atomic_write_json, atomic_write_text
from interp.cli import add_config_args, config_from_args, run_cli
from interp.hooks.capture import capture
from interp.instruments.speaker import speaker_embedding, speaker_instrument
from interp.models.backbone import Backbone
from steering.experiment import (
    DEFAULT_METHODS,
    METHODS,
    NONE,
    TTS_METHODS,
    TTSItem,
    Unit,
    run_units,
    uses_edit,
)
from steering.methods import DIRECTION_EDITS, LATENT_EDITS
from steering.run import SteerSetup, prepare, with_calibration
from steering.score import (
    BABBLE_RISE,
    LENGTH_RANGE,
    RATE,
    _clip01,
    _ratio,
    point_score,
    row_wer,
    scored,
    success,
    wer_decode,
)

log = logging.getLogger(__name__)

FRONTIER, FIGURE, SUMMARY = "frontier.json", "frontier.html", "frontier_summary.json"
FAMILIES = {"latents": LATENT_EDITS, "directions": DIRECTION_EDITS}
# In units of ‖μ_A − μ_B‖: the SAE edit clamps (z ← max(z, s·c)), which adds at most what the
# same-norm direction adds, so its family reaches further. On the shipped model laughter moves at
# 2, gender needs 8, rate babbled at 4 on an earlier model (docs/steering.md).
DEFAULT_STRENGTHS = {"latents": (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0),
                     "directions": (0.0, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0)}
# In units of the mean residual norm (--strength-units resid): at layer 12 of the shipped model
# that norm is 50, ‖Δμ‖ 5.1 for gender, 15.6 for rate and 42 for laughter, so gender's 8 ‖Δμ‖ is
# 0.8 and laughter's 2 is 1.7.
DEFAULT_RESID_STRENGTHS = (0.0, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0)
UNITS = ("dmu", "resid")
# steering.run's default methods and the two-sided SAE edit, which the gender frontier keeps
FRONTIER_METHODS = ("sae", "sae_shift", *DEFAULT_METHODS[1:])


def family(method: str) -> str:
    """latents or directions: what the method edits (sae_keepnorm is a latent edit)."""
    edit = TTS_METHODS[method].edit if method in TTS_METHODS else method
    return next(f for f, ms in FAMILIES.items() if edit in ms)


@dataclass(frozen=True)
class FrontierConfig(SteerSetup):
    """The concept–content frontier of one concept."""

    methods: str = ",".join(FRONTIER_METHODS)
    """comma-separated methods: sae, sae_shift, decoder, diffmeans, random_latents,
    random_direction, prompt (the default: steering.run's and the two-sided SAE edit, which the
    gender frontier keeps), and any other of steering.experiment.METHODS: sae_effect, sae_ts,
    the norm-preserving sae_keepnorm and diffmeans_keepnorm (control: random_direction_keepnorm),
    diffmeans_clamp"""
    strengths: str = ""
    """strengths of the edit methods (0, the unsteered output, is always a point): one comma list
    for all, or `;`-separated NAME:LIST entries by family (latents: sae and random_latents;
    directions: decoder, diffmeans and random_direction) or by method, e.g.
    "latents:1,2,4,8;directions:0.5,1,2,4" (a method's own entry wins over its family's, which
    wins over a plain list); empty: latents 1,2,4,6,8,12,16 and directions 0.5,1,2,4,6,8,12
    (dmu), or 0.1,0.2,0.4,0.7,1,1.5,2 for both (resid)"""
    strength_units: str = "dmu"
    """dmu: units of the difference-of-means norm ‖μ_A − μ_B‖ of each target (as steering.run);
    resid: units of the mean per-position residual norm at the hook on the items' prompt speech,
    so one strength is the same edit size at every layer"""
    bootstrap: int = 1000
    """bootstrap resamples of the items for the 95% CIs (0: none)"""
    out: str = ""
    """output folder (default runs/tinycosy/frontier/<concept>); a steering.run folder of the same
    concept, SAE and settings is reused by key"""

    def default_out(self) -> str:
        return f"runs/tinycosy/frontier/{self.concept}"

    def method_list(self) -> tuple[str, ...]:
        ms = tuple(dict.fromkeys(m.strip() for m in self.methods.split(",") if m.strip()))
        bad = [m for m in ms if m not in METHODS]
        if bad or not ms:
            raise ValueError(f"--methods {self.methods!r}: choose from {METHODS}")
        return ms

    def strength_table(self, methods: Iterable[str]) -> dict[str, list[float]]:
        """Each method's strengths: 0 and the sweep for an edit, [1] (as recorded) for the
        prompt method."""
        general: list[float] | None = None
        named: dict[str, list[float]] = {}
        for part in (p.strip() for p in self.strengths.split(";")):
            if not part:
                continue
            name, _, vals = part.rpartition(":")
            name = name.strip()
            if name and name not in FAMILIES and name not in METHODS:
                raise ValueError(f"--strengths {self.strengths!r}: {name!r} is neither a family "
                                 f"{tuple(FAMILIES)} nor a method {METHODS}")
            try:
                xs = [float(v) for v in vals.split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"--strengths {self.strengths!r}: give numbers like 1,2,4,8 or "
                                 "latents:1,2,4;directions:0.5,1,2") from None
            if not xs or any(x < 0 or not math.isfinite(x) for x in xs):
                raise ValueError(f"--strengths {self.strengths!r}: give non-negative numbers")
            if name:
                named[name] = xs
            else:
                general = xs
        out: dict[str, list[float]] = {}
        for m in methods:
            if TTS_METHODS[m].strength_free:
                out[m] = [1.0]
                continue
            fam = family(m)
            xs = (named.get(m) or named.get(fam) or general
                  or list(DEFAULT_RESID_STRENGTHS if self.strength_units == "resid"
                          else DEFAULT_STRENGTHS[fam]))
            out[m] = sorted({0.0, *xs})
        return out

    def validate(self) -> None:
        super().validate()
        self.strength_table(self.method_list())
        if self.strength_units not in UNITS:
            raise ValueError(f"--strength-units {self.strength_units!r}: choose from {UNITS}")
        if self.bootstrap < 0:
            raise ValueError("--bootstrap must be at least 0")

    def settings(self) -> dict:
        """What the outputs in the folder depend on beyond their keys."""
        return {"model": self.model, "strength_units": self.strength_units, "mode": self.mode,
                "positions": self.positions, "seed": self.seed,
                "window": ([self.from_step, self.steps] if self.positions in ("window", "boundary")
                           else None),
                **({"lead_words": self.lead_words} if self.lead_words else {}),
                # the ears measure every row: other instruments, other rows (none: the shipped)
                **({"instruments": self.instruments} if self.instruments else {})}


# -- the numbers -------------------------------------------------------------------------------


def _voice_similarity(rows: list[dict], voice: Callable[[dict], list[float] | None]
                      ) -> Callable[[dict, dict], float | None]:
    """cos(row, base) of the speaker fingerprints, standardised over every output given."""
    prints = {r["key"]: voice(r) for r in rows}
    have = np.array([p for p in prints.values() if p is not None], float)
    if len(have) < 2:
        return lambda r, b: None
    mu, sd = have.mean(0), have.std(0) + 1e-6

    def unit(p: list[float]) -> np.ndarray:
        z = (np.asarray(p, float) - mu) / sd
        return z / (np.linalg.norm(z) + 1e-12)

    def sim(r: dict, b: dict) -> float | None:
        p, q = prints.get(r["key"]), prints.get(b["key"])
        return None if p is None or q is None else float(unit(p) @ unit(q))

    return sim


def item_measures(rows: list[dict], wer_field: str = "wer_open",
                  voice: Callable[[dict], list[float] | None] | None = None,
                  zero_from_unsteered: Iterable[str] | None = None) -> dict:
    """{(target, method, strength): {item: {success, rise, voice, ratio}}} from rows of
    steering.run's shape (`item`, `method`, `target`, `strength`, `voice_gender`, the
    instruments' readings; `method` "none" is the unsteered output of the item). The unsteered
    outputs are also the strength-0 point of every method in `zero_from_unsteered` (None: every
    method with a strength) that has no row of its own there."""
    base = {r["item"]: r for r in rows if r["method"] == "none"}
    steered = [r for r in rows if r["method"] != "none" and r["item"] in base]
    sim = _voice_similarity([*base.values(), *steered], voice or (lambda r: None))

    def measure(target: str, r: dict, b: dict) -> dict:
        return {"success": success(target, r, b),
                "rise": row_wer(r, wer_field) - row_wer(b, wer_field), "voice": sim(r, b),
                "ratio": _ratio(r, b)}

    out: dict = {}
    for r in steered:
        if scored(r["target"], r.get("voice_gender")):
            out.setdefault((r["target"], r["method"], float(r["strength"])), {})[r["item"]] = (
                measure(r["target"], r, base[r["item"]]))
    zeros = ({m for m in {r["method"] for r in steered} if not TTS_METHODS[m].strength_free}
             if zero_from_unsteered is None else set(zero_from_unsteered))
    for target, method in sorted({(t, m) for t, m, _ in out if m in zeros}):
        if (target, method, 0.0) not in out:
            out[(target, method, 0.0)] = {
                i: measure(target, b, b) for i, b in base.items()
                if scored(target, b.get("voice_gender"))}
    return out


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(float(np.mean(xs)), 4) if xs else None


def _point(strength: float, ms: dict, rate: bool) -> dict:
    vals = list(ms.values())
    s, rise = _mean([m["success"] for m in vals]), _mean([m["rise"] for m in vals])
    ratios = [m["ratio"] for m in vals]
    return {"strength": strength, "concept_success": s, "wer_rise": rise,
            "content_kept": None if rise is None else round(1 - _clip01(rise), 4),
            "score": None if s is None else round(float(point_score(s, rise)), 4),
            "voice_kept": _mean([m["voice"] for m in vals]),
            "length_ok": None if rate or not vals else round(float(np.mean(
                [r is not None and LENGTH_RANGE[0] <= r <= LENGTH_RANGE[1] for r in ratios])), 4),
            "babble": round(float(np.mean([m["rise"] > BABBLE_RISE for m in vals])), 4)
            if vals else None,
            "n": len(vals)}


def bootstrap_best(success_: np.ndarray, rise: np.ndarray, n_boot: int, seed: int = 0
                   ) -> list[float] | None:
    """95% percentile CI of the best score over strengths, resampling items (rows of the
    items × strengths matrices; NaN where an item has no output at a strength)."""
    n = success_.shape[0]
    if n_boot <= 0 or n == 0:
        return None
    rng = np.random.default_rng(seed)
    best = np.empty(n_boot)
    chunk = max(1, 200_000 // max(1, n * success_.shape[1]))
    for at in range(0, n_boot, chunk):
        idx = rng.integers(0, n, (min(chunk, n_boot - at), n))
        best[at: at + len(idx)] = _best_scores(success_, rise, idx)
    lo, hi = np.percentile(best, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _best_scores(success_: np.ndarray, rise: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The best score over strengths (columns) of each resample of items (rows of `idx`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a strength no resampled item has
        s, r = np.nanmean(success_[idx], axis=1), np.nanmean(rise[idx], axis=1)
    sc = np.where(np.isnan(s) | np.isnan(r), np.nan, point_score(np.nan_to_num(s),
                                                                 np.nan_to_num(r)))
    return np.nanmax(np.where(np.isnan(sc), -1.0, sc), axis=1)


def paired_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                      n_boot: int, seed: int = 0) -> dict:
    """Best score of method a minus method b on the same items ((success, rise) matrices, items
    × strengths, rows aligned), with a 95% CI from resampling the items once for both: the
    paired statistic for "does a beat b", tighter than comparing two separate CIs."""
    n = a[0].shape[0]
    whole = np.arange(n)[None, :]
    diff = float(_best_scores(*a, whole)[0] - _best_scores(*b, whole)[0])
    if n_boot <= 0 or n == 0:
        return {"diff": round(diff, 4), "ci95": None}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n))
    d = _best_scores(*a, idx) - _best_scores(*b, idx)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return {"diff": round(diff, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}


def comparisons(rows: list[dict], table: dict, wer_field: str = "wer_open", n_boot: int = 1000,
                seed: int = 0, zero_from_unsteered: Iterable[str] | None = None) -> dict:
    """Per target, each SAE method (name starting with `sae`) against the best-scoring
    difference-of-means variant of the table (`diffmeans*`), paired over the target's items:
    {target: {"<sae method> − <diffmeans variant>": {diff, ci95}}}."""
    measures = item_measures(rows, wer_field, None, zero_from_unsteered)
    out: dict = {}
    for target, methods in table.items():
        dm = [m for m in methods if m.startswith("diffmeans")]
        saes = [m for m in methods if m.startswith("sae")]
        if not dm or not saes:
            continue
        ref = max(dm, key=lambda m: methods[m]["score"] if methods[m]["score"] is not None
                  else -1.0)

        for m in saes:
            items = sorted(_items(measures, target, m) & _items(measures, target, ref))
            if items:
                out.setdefault(target, {})[f"{m} − {ref}"] = paired_difference(
                    _matrices(measures, target, m, items),
                    _matrices(measures, target, ref, items), n_boot, seed)
    return out


def _items(measures: dict, target: str, method: str) -> set:
    return {i for (t, m, _), ms in measures.items() if (t, m) == (target, method) for i in ms}


def _matrices(measures: dict, target: str, method: str, items: list
              ) -> tuple[np.ndarray, np.ndarray]:
    """(success, WER rise) of `items` (rows) at each strength of the method (columns)."""
    per = [ms for (t, m, _), ms in sorted(measures.items(), key=lambda kv: kv[0][2])
           if (t, m) == (target, method)]
    S, R = (np.array([[ms[i][k] if i in ms else np.nan for ms in per] for i in items], float)
            for k in ("success", "rise"))
    return S, R


def _order(method: str) -> tuple[int, str]:
    return (METHODS.index(method) if method in METHODS else len(METHODS), method)


def frontier_table(rows: list[dict], wer_field: str = "wer_open",
                   voice: Callable[[dict], list[float] | None] | None = None,
                   n_boot: int = 1000, seed: int = 0,
                   zero_from_unsteered: Iterable[str] | None = None) -> dict:
    """{target: {method: {score, ci95, best_strength, points}}} from the rows (`item_measures`
    says what they hold); points in strength order, the best the first of the highest score."""
    measures = item_measures(rows, wer_field, voice, zero_from_unsteered)
    targets = list(dict.fromkeys(r["target"] for r in rows if r["method"] != "none"))
    out: dict = {}
    for target, method in sorted({(t, m) for t, m, _ in measures},
                                 key=lambda tm: (targets.index(tm[0]), _order(tm[1]))):
        strengths = sorted(s for t, m, s in measures if (t, m) == (target, method))
        per = [measures[(target, method, s)] for s in strengths]
        points = [_point(s, ms, target in RATE) for s, ms in zip(strengths, per, strict=True)]
        scores = [-1.0 if p["score"] is None else p["score"] for p in points]
        best = int(np.argmax(scores))
        items = sorted(_items(measures, target, method))
        S, R = _matrices(measures, target, method, items)
        out.setdefault(target, {})[method] = {
            "score": points[best]["score"],
            "ci95": bootstrap_best(S.reshape(len(items), len(per)),
                                   R.reshape(len(items), len(per)), n_boot, seed),
            "best_strength": strengths[best], "points": points}
    return out


# -- the run -----------------------------------------------------------------------------------


@torch.no_grad()
def resid_norm(engine: Backbone, hook: str, items: list[TTSItem]) -> float:
    """Mean per-position residual norm at `hook` over the items' prompt-speech positions (all
    positions of an item without prompt speech), from one pass over each item's prefix."""
    norms = []
    for it in items:
        req = engine.request(it.text, it.voice)
        with capture(engine.model, [hook]) as cache:
            engine.teacher_forced(req.text_ids, req.prompt, torch.zeros(0, dtype=torch.long))
        x = cache[hook][0]
        speech = [i for i, m in enumerate(req.modality[: len(x)]) if m == "speech"]
        norms.append(x[speech or slice(None)].float().norm(dim=-1))
    return float(torch.cat(norms).mean())


def frontier_units(items: list[TTSItem], targets: list[str], strengths: dict[str, list[float]],
                   zero_is_unsteered: bool = True) -> list[Unit]:
    """The unsteered output of every item, then per target and scored item every method at
    every strength (strength 0 of an edit is the unsteered output itself, unless an edit at 0
    changes something: `--mode set`)."""
    units = [Unit(it, NONE, "-", 0.0) for it in items]
    for t in targets:
        for it in (it for it in items if scored(t, it.gender)):
            for name, ss in strengths.items():
                m = TTS_METHODS[name]
                units += [Unit(it, m, t, s) for s in ss if s != 0 or not zero_is_unsteered]
    return units


def _voiceprint(out: Path) -> Callable[[dict], list[float] | None]:
    def read(row: dict) -> list[float] | None:
        audio, sr = sf.read(str(out / row["wav"]), dtype="float32")
        return speaker_embedding(audio, sr)

    return read


def _check_settings(out: Path, cfg: FrontierConfig) -> None:
    """Refuse a folder whose outputs were made with other settings (their keys would match)."""
    mine = cfg.settings()
    made = json.loads((out / SUMMARY).read_text()).get("settings") if (out / SUMMARY).exists() \
        else None
    if made is None and (out / "summary.json").exists():  # a steering.run folder
        c = json.loads((out / "summary.json").read_text()).get("config", {})
        made = {"model": c.get("model"), "strength_units": "dmu", "mode": c.get("mode"),
                "positions": c.get("positions"), "seed": c.get("seed"),
                "window": ([c.get("from_step"), c.get("steps")]
                           if c.get("positions") in ("window", "boundary") else None)}
    if made is not None and made != mine:
        diff = ", ".join(f"{k} {made.get(k)!r} (now {v!r})" for k, v in mine.items()
                         if made.get(k) != v)
        raise ValueError(f"{out} holds outputs made with {diff}; use --out")


def run_frontier(cfg: FrontierConfig) -> dict:
    """Run (or resume) the frontier; returns the summary (frontier.json's table under
    `frontier`) also written to frontier_summary.json."""
    cfg.validate()
    cfg = cfg.resolved()
    methods = cfg.prompt_methods(cfg.method_list())
    strengths = cfg.strength_table(methods)
    out = cfg.paths()[0]
    _check_settings(out, cfg)
    start = time.time()
    setup = with_calibration(prepare(cfg), cfg, methods)
    if not (out / SUMMARY).exists():
        atomic_write_json(out / SUMMARY, {"settings": cfg.settings()})
    steerer, norm, scale = setup.steerer, None, None
    if cfg.strength_units == "resid":
        norm = resid_norm(setup.engine, setup.hook, setup.items)
        scale = {t: norm / max(s.unit, 1e-12) for t, s in setup.selection.items()}
        steerer = replace(steerer, scale=scale)
    targets = list(setup.selection)
    zero_unsteered = cfg.mode != "set"
    units = frontier_units(setup.items, targets, strengths, zero_unsteered)
    with torch.no_grad():
        made = {r["key"]: r for r in run_units(steerer, units, out, desc="frontier",
                                                batch_size=cfg.batch_size)}
    rows = [made[u.key] for u in units]
    decode, field = wer_decode(rows)
    zeros = [m for m in methods if zero_unsteered and not TTS_METHODS[m].strength_free]
    table = frontier_table(rows, field, _voiceprint(out), cfg.bootstrap, cfg.seed, zeros)
    paired = comparisons(rows, table, field, cfg.bootstrap, cfg.seed, zeros)
    table, kept = merge_earlier(table, out / FRONTIER)
    atomic_write_json(out / FRONTIER, table)
    figure(table, cfg.concept, decode, cfg.strength_units, out / FIGURE)
    summary = {
        "concept": cfg.concept, "out": str(out), "hook": setup.hook, "sae": str(setup.sae_dir),
        "n_items": len(setup.items),
        "items_per_target": {t: sum(scored(t, it.gender) for it in setup.items)
                             for t in targets},
        "wer_decode": decode, "voice_by": speaker_instrument(),
        "strength_units": cfg.strength_units,
        "resid_norm": None if norm is None else round(norm, 4),
        "strength_scale": None if scale is None else {t: round(v, 4) for t, v in scale.items()},
        "unit_edit_norm": {t: round(s.unit, 4) for t, s in setup.selection.items()},
        "latents": {t: s.latents for t, s in setup.selection.items()},
        # how many latents the concept's direction takes (select.coverage; {} before it existed)
        "coverage": {t: s.coverage for t, s in setup.selection.items()},
        **({"effect_latents": {t: s.effect_latents for t, s in setup.selection.items()}}
           if uses_edit(methods, "sae_effect") else {}),
        **({"boundary_starts": {str(i): s for i, s in sorted(steerer.starts.items())}}
           if cfg.positions == "boundary" else {}),
        "strengths": strengths, "settings": cfg.settings(), "frontier": table,
        **({"kept_from_earlier_runs": kept} if kept else {}),
        # each SAE method against the best difference of means of this run, paired over items
        "paired": paired,
        "config": asdict(cfg), "seconds": round(time.time() - start, 1)}
    atomic_write_json(out / SUMMARY, summary)
    return summary


def merge_earlier(table: dict, path: Path) -> tuple[dict, dict[str, list[str]]]:
    """`table` with the entries of the folder's earlier frontier.json that this run did not
    remake (a run of a few methods into a folder adds to it instead of erasing the others; a
    method run again replaces its entry), and which those are ({target: [methods]})."""
    if not path.exists():
        return table, {}
    earlier = json.loads(path.read_text())
    merged: dict = {}
    kept: dict[str, list[str]] = {}
    for target in dict.fromkeys([*table, *earlier]):
        new, old = table.get(target, {}), earlier.get(target, {})
        extra = [m for m in old if m not in new]
        if extra:
            kept[target] = extra
        merged[target] = {m: new.get(m, old.get(m)) for m in sorted({*new, *old}, key=_order)}
    if kept:
        log.info("frontier.json keeps earlier runs' %s", kept)
    return merged, kept


def figure(table: dict, concept: str, decode: str, units: str, path: Path) -> None:
    """Plotly HTML (JS included): concept success against WER rise, a curve per method (its
    strengths in order, the hover says which), a panel per target."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    targets = list(table)
    fig = make_subplots(rows=1, cols=max(1, len(targets)), subplot_titles=targets)
    colors = {"sae": "#1f77b4", "decoder": "#ff7f0e", "diffmeans": "#2ca02c",
              "random_latents": "#9a9a9a", "random_direction": "#c7c7c7", "prompt": "#d62728",
              "sae_effect": "#9467bd", "sae_keepnorm": "#17becf", "diffmeans_keepnorm": "#bcbd22",
              "sae_ts": "#8c564b", "diffmeans_clamp": "#e377c2", "sae_effect_keepnorm": "#aec7e8",
              "sae_shift": "#08306b"}
    for col, t in enumerate(targets, 1):
        for method, m in table[t].items():
            ps = [p for p in m["points"] if p["concept_success"] is not None]
            fig.add_trace(go.Scatter(
                x=[p["wer_rise"] for p in ps], y=[p["concept_success"] for p in ps],
                name=f"{method} ({m['score']})" if len(targets) == 1 else method,
                legendgroup=method, showlegend=col == 1,
                mode="markers" if len(ps) == 1 else "lines+markers",
                marker={"color": colors.get(method), "size": 9},
                text=[f"{method} s={p['strength']:g}: score {p['score']}, voice kept "
                      f"{p['voice_kept']}, length ok {p['length_ok']}, n {p['n']}" for p in ps],
                hoverinfo="text"), row=1, col=col)
        fig.update_xaxes(title_text=f"WER rise ({decode} decode)", row=1, col=col)
    fig.update_yaxes(title_text="concept success", range=[-0.02, 1.02])
    fig.update_layout(title=f"Concept–content frontier: {concept} (strengths in {units} units; "
                      "up and left is better)", height=480)
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))


def console_table(summary: dict) -> str:
    """Method × target: best score [95% CI] @ its strength."""
    table = summary["frontier"]
    targets = list(table)
    methods = list(dict.fromkeys(m for t in targets for m in table[t]))
    w = max([18, *(len(m) + 2 for m in methods)])  # method names are as long as they need
    lines = [f"frontier {summary['concept']} at {summary['hook']} ({summary['n_items']} items; "
             f"per target {summary['items_per_target']}; WER from the {summary['wer_decode']} "
             f"decode; strengths in {summary['strength_units']} units) → {summary['out']}",
             "score = best over strengths of the harmonic mean of concept success and "
             "1 − WER rise [95% bootstrap CI] @ strength",
             f"{'method':<{w}}" + "".join(f"{t:<30}" for t in targets)]
    for m in methods:
        cells = []
        for t in targets:
            e = table[t].get(m)
            if e is None:
                cells.append(f"{'—':<30}")
                continue
            ci = "" if e["ci95"] is None else f" [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]"
            cells.append(f"{e['score']:.3f}{ci} @{e['best_strength']:g}".ljust(30))
        lines.append(f"{m:<{w}}" + "".join(cells))
    for target, diffs in (summary.get("paired") or {}).items():
        for name, d in diffs.items():
            ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            lines.append(f"paired, {target}: {name} {d['diff']:+.3f}{ci}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.frontier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, FrontierConfig)
    summary = run_frontier(config_from_args(FrontierConfig, parser.parse_args()))
    print(console_table(summary))
    out = Path(summary["out"])
    print(f"  → {out / FRONTIER}, {out / FIGURE}, {out / SUMMARY}")


if __name__ == "__main__":
    run_cli(main)
