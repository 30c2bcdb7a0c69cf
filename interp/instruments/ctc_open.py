"""Open-vocabulary CTC decoding: a prefix beam search over a large English word list with a
unigram word prior, that may also spell words the list lacks.

The grammar lexicon (`ctc_lexicon`) can only output the corpus's 314 words, so on open English
it forces every sentence into grammar words. This decoder keeps the same search (flashlight /
torchaudio style prefix beam search over a letter trie) over a much larger list: wordfreq's most
frequent English words, each scored by its unigram log-frequency (weight `lm_weight`, plus a
`word_bonus` per word against the prior's pull towards fewer words). A partial word is scored by
the best word it can still become (look-ahead), so common words win early. In `open` mode a word
may leave the list: it is spelt letter by letter and costs `oov_logp` (below any listed word) —
names and rare words survive instead of being snapped to a frequent neighbour. There is no
bigram model: wordfreq ships unigram frequencies only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.instruments.ctc_lexicon import NEG, logadd

WORDLIST = "wordlist.tsv"
_LETTERS = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class OpenBeamConfig:
    """Search and prior settings of the open-vocabulary decoder."""

    beam: int = 16
    """label prefixes kept per frame"""
    prune: float = 8.0
    """tokens more than this many nats below a frame's best are not tried"""
    blank_skip: float = 0.999
    """frames whose blank probability exceeds this only extend by blank (speed)"""
    lm_weight: float = 0.8
    """weight of the unigram log-probability (natural log) of each word (defaults: the best of
    `python -m interp.instruments.evaluate --tune` on open-domain dev speech)"""
    word_bonus: float = -1.0
    """log-score added per word (balances the prior's preference for fewer, commoner words)"""
    oov_logp: float = -4.0
    """log-probability of a word outside the list (open mode), before its per-letter cost"""
    oov_letter_logp: float = -4.0
    """log-probability per letter of a word outside the list: the cost grows with the spelling,
    so that splitting one into two costs little more than keeping it whole and the delimiter
    frames decide (a per-word cost alone made long run-together spellings win); the rarest
    listed word is about -15"""
    boundary_penalty: float = 2.0
    """cost of a word boundary with no delimiter token between two words"""


class WordList:
    """Words with natural-log unigram probabilities, and for every prefix the best of them."""

    def __init__(self, logp: dict[str, float], alphabet: re.Pattern | None = _LETTERS):
        """`alphabet`: what a word must be spelt in (a-z and apostrophe); None keeps every word
        (a list over phoneme spellings, `ctc_phonemes`)."""
        self.logp = {w: p for w, p in logp.items()
                     if w and (alphabet is None or alphabet.fullmatch(w))}
        if not self.logp:
            raise ValueError("the word list is empty: give it at least one a-z word")
        self.best: dict[str, float] = {}
        for w, p in self.logp.items():
            for i in range(len(w) + 1):
                if self.best.get(w[:i], NEG) < p:
                    self.best[w[:i]] = p

    @classmethod
    def from_counts(cls, counts: dict[str, float]) -> WordList:
        """From frequencies (any scale): log of each word's share."""
        total = sum(counts.values())
        return cls({w: math.log(c / total) for w, c in counts.items() if c > 0})

    @classmethod
    def from_wordfreq(cls, n: int = 50_000, lang: str = "en") -> WordList:
        """wordfreq's top `n` words of `lang` that are plain a-z/apostrophe."""
        from wordfreq import top_n_list, word_frequency

        words = [w for w in top_n_list(lang, int(n * 1.2)) if _LETTERS.fullmatch(w)][:n]
        return cls.from_counts({w: word_frequency(w, lang) for w in words})

    def save(self, path: str | Path) -> None:
        rows = sorted(self.logp.items(), key=lambda kv: (-kv[1], kv[0]))
        Path(path).write_text("".join(f"{w}\t{p:.4f}\n" for w, p in rows))

    @classmethod
    def load(cls, path: str | Path) -> WordList:
        out = {}
        for line in Path(path).read_text().splitlines():
            w, _, p = line.partition("\t")
            out[w] = float(p)
        return cls(out)

    def __len__(self) -> int:
        return len(self.logp)


class OpenDecoder:
    """CTC prefix beam search with a word-list unigram prior; `allow_oov` lets words leave it."""

    def __init__(self, words: WordList, vocab: dict[str, int], blank: str = "<pad>",
                 delimiter: str = "|", cfg: OpenBeamConfig | None = None):
        self.words = words
        self.blank, self.delim = vocab[blank], vocab[delimiter]
        self.letters = {i: t for t, i in vocab.items() if len(t) == 1 and t != delimiter}
        self.cfg = cfg or OpenBeamConfig()

    def _word_score(self, word: str, allow_oov: bool) -> float | None:
        """Prior score of a finished word (weighted log-prob + bonus); None if not allowed."""
        p = self.words.logp.get(word)
        if p is None:
            if not allow_oov:
                return None
            p = self._oov(word)
        return self.cfg.lm_weight * p + self.cfg.word_bonus

    def _oov(self, word: str) -> float:
        return self.cfg.oov_logp + self.cfg.oov_letter_logp * len(word)

    def _look(self, partial: str) -> float:
        """Weighted best log-prob of any word the partial can still become (else as an OOV)."""
        best = self.words.best.get(partial)
        return self.cfg.lm_weight * (self._oov(partial) if best is None else best)

    def decode(self, log_probs: np.ndarray, allow_oov: bool = True) -> str | None:
        """The best transcript of (T, V) log-probabilities; None when (closed mode) no sequence of
        listed words fits."""
        cfg, blank, delim = self.cfg, self.blank, self.delim
        skip = math.log(cfg.blank_skip)
        # key (words, partial, last label) -> [log P(..blank), log P(..not blank)]; lm[key]:
        # prior score of the finished words (the partial's look-ahead is added for ranking only)
        beams: dict[tuple, list[float]] = {((), "", None): [0.0, NEG]}
        lm: dict[tuple, float] = {((), "", None): 0.0}
        for row in np.asarray(log_probs, dtype=np.float64):
            if row[blank] > skip:
                beams = {k: [logadd(*v) + row[blank], NEG] for k, v in beams.items()}
                continue
            cands = [int(c) for c in np.flatnonzero(row > row.max() - cfg.prune) if c != blank]
            nxt: dict[tuple, list[float]] = {}

            def add(key: tuple, which: int, lp: float, prior: float, nxt: dict = nxt,
                    lm: dict = lm) -> None:
                slot = nxt.setdefault(key, [NEG, NEG])
                slot[which] = logadd(slot[which], lp)
                lm.setdefault(key, prior)

            for key, (pb, pnb) in beams.items():
                words, partial, last = key
                total, prior = logadd(pb, pnb), lm[key]
                add(key, 0, total + row[blank], prior)
                if last is not None:  # the last label repeated without a blank collapses into it
                    add(key, 1, pnb + row[last], prior)
                for c in cands:
                    lp = (pb if c == last else total) + row[c]
                    if c == delim:
                        if not partial:
                            add((words, "", c), 1, lp, prior)
                        elif (s := self._word_score(partial, allow_oov)) is not None:
                            add((words + (partial,), "", c), 1, lp, prior + s)
                        continue
                    ch = self.letters.get(c)
                    if ch is None:
                        continue
                    if allow_oov or partial + ch in self.words.best:
                        add((words, partial + ch, c), 1, lp, prior)
                    if partial in self.words.logp and (allow_oov or ch in self.words.best):
                        s = self._word_score(partial, allow_oov)
                        add((words + (partial,), ch, c), 1, lp - cfg.boundary_penalty, prior + s)
            ranked = sorted(nxt.items(), key=lambda kv: -(logadd(*kv[1]) + lm[kv[0]]
                                                          + self._look(kv[0][1])))
            beams = dict(ranked[: cfg.beam])
            lm = {k: lm[k] for k in beams}
        finished = []
        for (words, partial, last), v in beams.items():
            s = self._word_score(partial, allow_oov) if partial else 0.0
            if s is not None:
                finished.append((logadd(*v) + lm[(words, partial, last)] + s,
                                 words + ((partial,) if partial else ())))
        return " ".join(max(finished)[1]) if finished else None


def decode_modes(decoder: OpenDecoder, log_probs: np.ndarray) -> dict[str, str]:
    """The word-list reading (closed; falls back to open when nothing fits) and the open one."""
    opened = decoder.decode(log_probs, allow_oov=True) or ""
    closed = decoder.decode(log_probs, allow_oov=False)
    return {"wordlist": opened if closed is None else closed, "open": opened}


def words_of(texts: Iterable[str]) -> set[str]:
    return {w for t in texts for w in _LETTERS.findall(t.lower())}
