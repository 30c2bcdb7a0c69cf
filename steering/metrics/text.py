"""Text normalisation and error rates (word and character Levenshtein) for the recogniser."""

from __future__ import annotations

import re
from collections.abc import Sequence

ALPHABET = "abcdefghijklmnopqrstuvwxyz'"


def normalize_text(text: str) -> str:
    """Lower case; letters and apostrophes kept, everything else a word break."""
    return " ".join(re.findall(r"[a-z']+", text.lower().replace("’", "'")))


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalisation (0 for two empty texts, 1 for a non-empty guess)."""
    r, h = normalize_text(reference).split(), normalize_text(hypothesis).split()
    if not r:
        return 0.0 if not h else 1.0
    return edit_distance(r, h) / len(r)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate (spaces count) after normalisation."""
    r, h = normalize_text(reference), normalize_text(hypothesis)
    if not r:
        return 0.0 if not h else 1.0
    return edit_distance(r, h) / len(r)


def corpus_error_rates(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """Corpus-level WER and CER (total edits / total reference length) and exact-match share."""
    w_err = w_n = c_err = c_n = exact = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = normalize_text(ref), normalize_text(hyp)
        w_err += edit_distance(r.split(), h.split())
        w_n += len(r.split())
        c_err += edit_distance(r, h)
        c_n += len(r)
        exact += r == h
    return {"n": len(refs), "wer": round(w_err / max(1, w_n), 4),
            "cer": round(c_err / max(1, c_n), 4), "exact": round(exact / max(1, len(refs)), 4)}
