"""How much survives wav → tokens → wav, measured on held-out voices.

Figures (written to `roundtrip.json`, plotted to `roundtrip.html`):
- gender kept: median F0 of the round trip against the original, per gender;
- duration kept: round-trip length / original length, and voiced duration ratio;
- laughter still distinct: a logistic-regression token classifier (laughter vs the rest) trained on
  original train-split audio, scored by AUROC on held-out originals and on their round trips;
- code usage: codes used and the perplexity of their distribution;
- word error rate: left null until the listening instruments' recognizer exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from interp.atomic import atomic_write_json
from interp.audio import SAMPLE_RATE
from interp.audio.codec import SpeechCodec
from interp.audio.features import log_mel
from interp.audio.pitch import median_f0, voiced_duration
from interp.corpus.table import load_audio, load_table

log = logging.getLogger(__name__)
F0_TOLERANCE = 0.10


@dataclass(frozen=True)
class RoundTripConfig:
    """What to measure the round trip on."""

    split: str = "heldout_voices"
    """corpus split to measure on"""
    max_utts: int = 120
    """utterances measured (first N of the split)"""
    laughter_train_utts: int = 400
    """train-split utterances for the laughter classifier"""
    examples: int = 4
    """original/round-trip wav pairs kept for listening"""
    asr: str = ""
    """recogniser folder for the WER figures (default: the shipped one, lexicon-constrained); one
    with a word list reads with its open-vocabulary decode"""
    vocoder: bool = True
    """also read each utterance resynthesised from its own features (`SpeechCodec.resynthesize`):
    the WER the vocoder alone costs, so that the code book's share is the rest"""


def token_features(audio: np.ndarray, codec: SpeechCodec) -> np.ndarray:
    """(N, 2*n_mels) mean and std of log-mel over each token's frames."""
    stack = codec.cfg.stack
    mel = log_mel(audio, codec.cfg.mel)
    n = int(np.ceil(len(audio) / (codec.cfg.mel.hop_length * stack)))
    mel = np.pad(mel, ((0, max(0, n * stack - len(mel))), (0, 0)), mode="edge")[: n * stack]
    mel = mel.reshape(n, stack, -1)
    return np.concatenate([mel.mean(1), mel.std(1)], axis=1)


def laughter_labels(row: dict, n_tokens: int, token_rate: float) -> np.ndarray:
    """1 for tokens whose centre lies inside a laughter span."""
    centres = (np.arange(n_tokens) + 0.5) / token_rate
    y = np.zeros(n_tokens, np.int64)
    for t in row["tags"]:
        if t["tag"] == "laughter":
            y[(centres >= t["start"]) & (centres < t["end"])] = 1
    return y


def fit_laughter_probe(corpus: Path, codec: SpeechCodec, n: int) -> LogisticRegression:
    """Logistic regression laughter-vs-rest over token features of `n` tagged train utterances."""
    rows = [r for r in load_table(corpus, "train") if r["tags"]][:n]
    xs, ys = [], []
    for r in rows:
        audio, _ = load_audio(corpus, r)
        x = token_features(audio, codec)
        xs.append(x)
        ys.append(laughter_labels(r, len(x), codec.cfg.token_rate))
    y = np.concatenate(ys)
    if y.min() == y.max():
        raise ValueError("the train split has no laughter: build a corpus with --laughter-frac > 0")
    return LogisticRegression(max_iter=2000, C=0.1).fit(np.concatenate(xs), y)


def laughter_score(audio: np.ndarray, codec: SpeechCodec, probe: LogisticRegression) -> float:
    """Utterance laughter score: the highest probe probability averaged over 5 tokens (0.2 s),
    so that one odd token does not count as a laugh."""
    if len(audio) < 640 * 5:
        return 0.0
    p = probe.predict_proba(token_features(audio, codec))[:, 1]
    return float(np.convolve(p, np.ones(5) / 5, mode="valid").max())


def _gender_summary(ratios: dict[str, list[float]], f0s: dict[str, list[tuple]]) -> dict:
    out = {}
    for g, r in ratios.items():
        arr = np.array([x for x in r if np.isfinite(x)])
        pairs = np.array(f0s[g])
        out[g] = {"n": len(r), "n_measured": len(arr),
                  "median_f0_original": round(float(np.nanmedian(pairs[:, 0])), 1),
                  "median_f0_roundtrip": round(float(np.nanmedian(pairs[:, 1])), 1),
                  "median_ratio": round(float(np.median(arr)), 4) if len(arr) else None,
                  "frac_within_10pct": round(float(np.mean(np.abs(arr - 1) <= F0_TOLERANCE)), 4)
                  if len(arr) else 0.0}
    return out


def _recognizer(asr: str = ""):  # noqa: ANN202
    """(`transcribe(wav, sr)`, what it is): the shipped recogniser's lexicon-constrained reading,
    or `asr`'s (its open-vocabulary decode when it has a word list); None when the shipped one
    cannot be loaded (a named one that cannot is an error)."""
    if asr:
        from interp.instruments.asr import load_recognizer

        rec = load_recognizer(asr)  # refused in one line when the folder holds none
        if getattr(rec, "wordlist", None) is not None:
            return (lambda wav, sr: rec.readings(wav, sr)["open"]), f"{asr}, open-vocabulary"
        return (lambda wav, sr: rec.transcribe(wav, sr, lexicon=True)), f"{asr}, lexicon"
    try:
        from interp.instruments import transcribe

        transcribe(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # loads the weights once
        return transcribe, "data/instruments/asr, lexicon-constrained"
    except Exception as exc:  # noqa: BLE001 (any failure only costs the WER figure)
        logging.getLogger(__name__).warning("no content recogniser (%s): WER left null", exc)
        return None


def _wer(refs: list[str], hyps: dict[str, list[str]], recognizer: str,
         domains: list[str]) -> dict:
    """Corpus WER of the recogniser on each reading (original, round trip and, when measured,
    the vocoder's resynthesis), and per text domain (grammar / open) when the corpus has both."""
    from interp.instruments.text import corpus_error_rates

    def rates(idx: list[int]) -> dict:
        ref = [refs[i] for i in idx]
        return {name: corpus_error_rates(ref, [hyp[i] for i in idx])["wer"]
                for name, hyp in hyps.items()}

    out = rates(list(range(len(refs)))) | {"recognizer": recognizer}
    if len(set(domains)) > 1:
        out["by_domain"] = {d: rates([i for i, x in enumerate(domains) if x == d]) | {
            "utterances": domains.count(d)} for d in sorted(set(domains))}
    return out


def measure_roundtrip(corpus: Path, codec: SpeechCodec, cfg: RoundTripConfig,
                      out: Path | None = None) -> dict:
    """Run the round trip over `cfg.split` and return (and write, when `out` is given) figures."""
    rows = load_table(corpus, cfg.split)[: cfg.max_utts]
    if not rows:
        raise ValueError(f"split {cfg.split!r} of {corpus} is empty; build a larger corpus")
    clf = fit_laughter_probe(corpus, codec, cfg.laughter_train_utts)
    ratios: dict[str, list[float]] = {"male": [], "female": []}
    f0s: dict[str, list[tuple]] = {"male": [], "female": []}
    dur, vdur, tokens, lx_o, lx_r, ly = [], [], [], [], [], []
    reader = _recognizer(cfg.asr)
    transcribe, recognizer = reader if reader is not None else (None, "")
    refs, domains = [], []
    hyps: dict[str, list[str]] = {"original": [], "roundtrip": []} | (
        {"vocoder": []} if cfg.vocoder else {})
    for i, r in enumerate(tqdm(rows, desc="round trip", unit="utt")):
        audio, sr = load_audio(corpus, r)
        tok = codec.encode(audio, sr)
        rt = codec.decode(tok)
        fo, fr = median_f0(audio, sr), median_f0(rt, sr)
        ratios[r["gender"]].append(fr / fo)
        f0s[r["gender"]].append((fo, fr))
        dur.append(len(rt) / len(audio))
        vdur.append(voiced_duration(rt, sr) / max(voiced_duration(audio, sr), 1e-3))
        tokens.append(tok)
        if transcribe is not None:
            refs.append(r["text_plain"])
            domains.append(r.get("domain") or "grammar")
            hyps["original"].append(transcribe(audio, sr))
            hyps["roundtrip"].append(transcribe(rt, sr))
            if cfg.vocoder:
                hyps["vocoder"].append(transcribe(codec.resynthesize(audio), sr))
        if r["tags"]:
            xo, xr = token_features(audio, codec), token_features(rt, codec)
            n = min(len(xo), len(xr))
            lx_o.append(xo[:n])
            lx_r.append(xr[:n])
            ly.append(laughter_labels(r, n, codec.cfg.token_rate))
        if out is not None and i < cfg.examples:
            (out / "examples").mkdir(parents=True, exist_ok=True)
            sf.write(out / "examples" / f"{r['utt_id']}_original.wav", audio, sr)
            sf.write(out / "examples" / f"{r['utt_id']}_roundtrip.wav", rt, sr)
    y = np.concatenate(ly) if ly else np.zeros(0)
    has_laugh = len(y) and 0 < y.mean() < 1

    def auroc(xs):
        return round(float(roc_auc_score(y, clf.predict_proba(np.concatenate(xs))[:, 1])), 4)

    counts = np.bincount(np.concatenate(tokens), minlength=codec.n_codes)
    p = counts[counts > 0] / counts.sum()
    result = {
        "split": cfg.split, "utterances": len(rows), "codec": codec.cfg.to_dict(),
        "f0": _gender_summary(ratios, f0s),
        "duration_ratio": {"mean": round(float(np.mean(dur)), 4),
                           "max_abs_ratio_error": round(float(np.max(np.abs(np.array(dur) - 1))), 4)},
        "voiced_duration_ratio": {"median": round(float(np.median(vdur)), 4)},
        "laughter_auroc": {"original": auroc(lx_o) if has_laugh else None,
                           "roundtrip": auroc(lx_r) if has_laugh else None,
                           "laughter_tokens": int(y.sum()), "tokens": int(len(y))},
        "codes": {"used": int((counts > 0).sum()), "of": codec.n_codes,
                  "perplexity": round(float(np.exp(-(p * np.log(p)).sum())), 1)},
        "wer": _wer(refs, hyps, recognizer, domains) if transcribe else {
            "original": None, "roundtrip": None,
            "why_null": "the content recognizer (data/instruments/asr) did not load"},
    }
    if out is not None:
        _write(out, result, f0s)
    return result


def _write(out: Path, result: dict, f0s: dict[str, list[tuple]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "roundtrip.json", result)
    fig = go.Figure()
    for g, color in (("male", "#1f77b4"), ("female", "#d62728")):
        pts = np.array(f0s[g]) if f0s[g] else np.zeros((0, 2))
        fig.add_scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=g, marker_color=color)
    fig.add_scatter(x=[60, 300], y=[60, 300], mode="lines", name="y = x",
                    line={"dash": "dot", "color": "gray"})
    fig.update_layout(title="Codec round trip: median F0 per utterance (held-out voices)",
                      xaxis_title="original F0 (Hz)", yaxis_title="round-trip F0 (Hz)")
    fig.write_html(out / "roundtrip.html", include_plotlyjs=True)
