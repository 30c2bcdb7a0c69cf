"""A listening instrument for a concept of your own: P(positive group) of a clip.

The shipped instruments hear laughter, gender, words and rate; a concept defined from a corpus's
labels (`interp.concepts`, e.g. `style=whisper` vs `style=default`) has none. This one is fitted
on the corpus itself: each utterance becomes 240 numbers — per band of the 80-band log-mel
(`interp.audio.features`, 100 frames a second) the mean and the standard deviation over the
clip's sounding frames (within 40 dB of its loudest), and the mean absolute change from frame to
frame (how fast the spectrum moves) — and a standardised, class-balanced logistic regression
tells the positive group's utterances from the negative group's. It is trained on `train`-split
utterances and scored on the held-out ones (`heldout_voices`, `heldout_sentences`): its held-out
balanced accuracy and AUROC (`report`) say how far its readings can be trusted. Tag groups read
whole utterances (an utterance with a `breath` span vs one without), utterances in both groups
are left out.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from interp.audio import SAMPLE_RATE
from interp.audio.features import MelConfig, log_mel
from interp.concepts import Concept, CorpusGroups
from interp.corpus.table import load_audio, load_table
from interp.instruments.common import prepare_audio

log = logging.getLogger(__name__)

FEATURES = ("log-mel statistics: per band the mean, the standard deviation and the mean "
            "absolute frame-to-frame change over the sounding frames (80 bands, 240 numbers)")
TRAIN_SPLIT = "train"
SOUNDING_DB = 40.0
MIN_SAMPLES = SAMPLE_RATE // 10  # under 0.1 s: nothing to measure
MEL = MelConfig()


def clip_features(audio: np.ndarray, cfg: MelConfig = MEL) -> np.ndarray:
    """(3 · n_mels,) float64: mean, std and mean |Δ| of the log-mel bands over sounding frames."""
    mel = log_mel(audio, cfg).astype(np.float64)  # (T, n_mels), natural log power
    energy = np.log(np.exp(mel).sum(1))
    sounding = mel[energy >= energy.max() - SOUNDING_DB * np.log(10) / 10]
    frames = sounding if len(sounding) >= 2 else mel
    delta = np.abs(np.diff(frames, axis=0)).mean(0) if len(frames) > 1 else np.zeros(mel.shape[1])
    return np.concatenate([frames.mean(0), frames.std(0), delta])


@dataclass(frozen=True)
class ConceptClassifier:
    """P(positive group) of a clip: a logistic regression on standardised `clip_features`."""

    concept: str
    target: str
    positive: str
    negative: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    report: dict
    """features, utterances per group and split, held-out balanced accuracy and AUROC"""

    def p(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
        """P(positive) of one clip (None under 0.1 s)."""
        if max(np.shape(audio), default=0) < sr // 10:  # samples (of any channel layout)
            return None
        x, _ = prepare_audio(audio, sr)
        return round(float(self._proba(clip_features(x)[None])[0]), 4)

    def _proba(self, feats: np.ndarray) -> np.ndarray:
        z = (feats - np.array(self.mean)) / np.array(self.scale)
        logit = z @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ConceptClassifier:
        return cls(**{**d, **{k: tuple(d[k]) for k in ("mean", "scale", "coef")}})


def _sample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(idx, min(n, len(idx)), replace=False)) if len(idx) else idx


def fit_classifier(corpus: str | Path, concept: Concept, target: str | None = None,
                   max_per_group: int = 200, seed: int = 0, reg_c: float = 1.0
                   ) -> ConceptClassifier:
    """Fit on up to `max_per_group` train-split utterances of each of the target's groups (a
    seeded sample) and score on up to as many held-out ones of each."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    t = concept.target(target) if target else concept.targets[0]
    rows = load_table(corpus)
    groups = CorpusGroups(concept, rows, str(corpus))
    pos, neg = groups.utterance[t.positive.name], groups.utterance[t.negative.name]
    pos, neg = pos & ~neg, neg & ~pos
    train = np.array([r["split"] == TRAIN_SPLIT for r in rows])
    rng = np.random.default_rng([seed, 35])
    picks = {(part, g): _sample(np.flatnonzero(mask & ok), max_per_group, rng)
             for part, ok in (("train", train), ("heldout", ~train))
             for g, mask in (("positive", pos), ("negative", neg))}
    counts = {f"{part}_{g}": len(v) for (part, g), v in picks.items()}
    if not (counts["train_positive"] and counts["train_negative"]):
        raise ValueError(f"the classifier of {concept.name!r} needs train-split utterances of "
                         f"both groups ({t.positive.name}: {counts['train_positive']}, "
                         f"{t.negative.name}: {counts['train_negative']}) in {corpus}")

    def features(idx: np.ndarray) -> np.ndarray:
        out = []
        for i in idx:
            audio, sr = load_audio(corpus, rows[int(i)])
            out.append(clip_features(prepare_audio(audio, sr)[0]))
        return np.array(out).reshape(len(idx), -1)

    x_tr = np.concatenate([features(picks["train", "positive"]),
                           features(picks["train", "negative"])])
    y_tr = np.r_[np.ones(counts["train_positive"]), np.zeros(counts["train_negative"])]
    mean, scale = x_tr.mean(0), x_tr.std(0) + 1e-6
    clf = LogisticRegression(C=reg_c, max_iter=1000, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit((x_tr - mean) / scale, y_tr)
    model = ConceptClassifier(concept.name, t.name, t.positive.name, t.negative.name,
                              tuple(mean.tolist()), tuple(scale.tolist()),
                              tuple(clf.coef_[0].tolist()), float(clf.intercept_[0]), {})
    report: dict = {"features": FEATURES, "model": "logistic regression (standardised, "
                    f"class-balanced, C={reg_c})", "utterances": counts,
                    "train_accuracy": round(float(np.mean(
                        (model._proba(x_tr) > 0.5) == y_tr)), 4)}
    if counts["heldout_positive"] and counts["heldout_negative"]:
        x_te = np.concatenate([features(picks["heldout", "positive"]),
                               features(picks["heldout", "negative"])])
        y_te = np.r_[np.ones(counts["heldout_positive"]), np.zeros(counts["heldout_negative"])]
        p = model._proba(x_te)
        report.update({
            "heldout_balanced_accuracy": round(float(balanced_accuracy_score(y_te, p > 0.5)), 4),
            "heldout_auroc": round(float(roc_auc_score(y_te, p)), 4),
            "heldout_mean_p_positive": round(float(p[y_te == 1].mean()), 4),
            "heldout_mean_p_negative": round(float(p[y_te == 0].mean()), 4)})
    else:
        report["heldout_note"] = ("no held-out utterances of both groups: the classifier is "
                                  "not scored; trust its readings less")
    log.info("classifier of %s: %s", concept.name, report)
    return ConceptClassifier(**{**model.to_dict(), "report": report})
