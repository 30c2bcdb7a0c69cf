"""Lexicon-constrained CTC beam search: the recogniser's transcript restricted to known words.

Greedy CTC spells each frame's best letter, so a closed-vocabulary corpus comes out as near-miss
spellings ("repaarrit") and run-together words ("beforediner"). This decoder searches label
sequences whose words all come from a lexicon (a prefix beam search over a letter trie, as in
flashlight's / torchaudio's lexicon decoder, without a language model): word boundaries come from
the delimiter token or, at a small penalty, straight from one word's last letter to the next's
first. What it cannot do: output a word outside the lexicon, so it can hide a mispronunciation
that lands near another known word (the greedy transcript is always reported beside it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

NEG = -math.inf


def logadd(a: float, b: float) -> float:
    if a == NEG:
        return b
    if b == NEG:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


@dataclass(frozen=True)
class BeamConfig:
    """Search settings of the lexicon decoder."""

    beam: int = 12
    """label prefixes kept per frame"""
    prune: float = 8.0
    """tokens more than this many nats below a frame's best are not tried"""
    blank_skip: float = 0.999
    """frames whose blank probability exceeds this only extend by blank (speed)"""
    boundary_penalty: float = 2.0
    """log-prob cost of a word boundary with no delimiter token between the words"""
    max_gap: float = 25.0
    """give up (None) when the best lexicon reading is this many nats less likely than the
    greedy frame-by-frame path: the clip says something the lexicon cannot spell"""


class LexiconDecoder:
    """CTC prefix beam search whose output words all belong to `words`."""

    def __init__(self, words: Iterable[str], vocab: dict[str, int], blank: str = "<pad>",
                 delimiter: str = "|", cfg: BeamConfig | None = None):
        self.words = frozenset(w for w in words if w)
        if not self.words:
            raise ValueError("the lexicon is empty: give the decoder at least one word")
        self.prefixes = {w[:i] for w in self.words for i in range(len(w) + 1)}
        self.blank, self.delim = vocab[blank], vocab[delimiter]
        self.letters = {i: t for t, i in vocab.items() if len(t) == 1 and t != delimiter}
        self.cfg = cfg or BeamConfig()

    def decode(self, log_probs: np.ndarray) -> str | None:
        """The best all-in-lexicon transcript of (T, V) log-probabilities, or None when no
        sequence of lexicon words fits (e.g. the clip says a word the lexicon lacks)."""
        cfg, blank, delim = self.cfg, self.blank, self.delim
        log_probs = np.asarray(log_probs, dtype=np.float64)
        greedy_lp = float(log_probs.max(1).sum())
        skip = math.log(cfg.blank_skip)
        # prefix (words, partial word, last label) -> [log P(ending in blank), log P(not)]
        beams: dict[tuple, list[float]] = {((), "", None): [0.0, NEG]}
        for row in log_probs:
            if row[blank] > skip:
                beams = {k: [logadd(*v) + row[blank], NEG] for k, v in beams.items()}
                continue
            cands = [int(c) for c in np.flatnonzero(row > row.max() - cfg.prune) if c != blank]
            nxt: dict[tuple, list[float]] = {}

            def add(key: tuple, which: int, lp: float, nxt: dict = nxt) -> None:
                slot = nxt.setdefault(key, [NEG, NEG])
                slot[which] = logadd(slot[which], lp)

            for key, (pb, pnb) in beams.items():
                words, partial, last = key
                total = logadd(pb, pnb)
                add(key, 0, total + row[blank])
                if last is not None:  # the last label repeated without a blank collapses into it
                    add(key, 1, pnb + row[last])
                for c in cands:
                    lp = (pb if c == last else total) + row[c]
                    if c == delim:
                        if not partial:
                            add((words, "", c), 1, lp)
                        elif partial in self.words:
                            add((words + (partial,), "", c), 1, lp)
                        continue
                    ch = self.letters.get(c)
                    if ch is None:
                        continue
                    if partial + ch in self.prefixes:
                        add((words, partial + ch, c), 1, lp)
                    if partial in self.words and ch in self.prefixes:
                        add((words + (partial,), ch, c), 1, lp - cfg.boundary_penalty)
            best = sorted(nxt.items(), key=lambda kv: -logadd(*kv[1]))[: cfg.beam]
            beams = dict(best)
        finished = []
        for (words, partial, _), v in beams.items():
            if not partial or partial in self.words:
                finished.append((logadd(*v), words + ((partial,) if partial else ())))
        if not finished or max(finished)[0] < greedy_lp - cfg.max_gap:
            return None
        return " ".join(max(finished)[1])
