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


class Lexicon:
    """Snaps misspelt words of a transcript to the nearest known word (a tiny 'language model'
    for a closed vocabulary such as the corpus grammar's); unknown-and-far words are kept."""

    def __init__(self, words: Sequence[str], max_rel: float = 0.34):
        self.words = sorted(set(words))
        self.known = set(self.words)
        self.max_rel = max_rel

    def nearest(self, word: str) -> tuple[str, int]:
        cands = [w for w in self.words if abs(len(w) - len(word)) <= 2] or self.words
        return min(((w, edit_distance(word, w)) for w in cands), key=lambda t: (t[1], t[0]))

    def _fix(self, word: str) -> str:
        if word in self.known:
            return word
        best, dist = self.nearest(word)
        if dist <= max(1, int(self.max_rel * len(word))):
            return best
        splits = []  # two words run together ("tinyshovl" → "tiny shovel")
        for i in range(1, len(word)):
            (a, da), (b, db) = self.nearest(word[:i]), self.nearest(word[i:])
            splits.append((da + db, f"{a} {b}"))
        if splits and min(splits)[0] <= max(1, int(self.max_rel * len(word)) - 1):
            return min(splits)[1]
        return word

    def correct(self, text: str) -> str:
        return " ".join(self._fix(w) for w in normalize_text(text).split())
