"""Phoneme units for the CTC recogniser: transcripts spelt in espeak-ng's phonemes instead of
letters, and the pronunciation table that turns decoded phoneme words back into words.

Why: the letter recogniser hears open English and cannot spell it — on held-out voices its
characters are 89% right but its open decode gets 36% of the words wrong (encyclopaedic
sentences 47%), because English spelling is not what it sounds like. With phoneme units the
acoustic model only has to hear (espeak-ng says each phoneme the same way in every word), and
spelling is a table lookup: every word of the word list (wordfreq's most frequent) in its
citation form, and every form the training sentences put a word in (espeak-ng's weak forms:
"the" is /D@/ in a sentence, /Di:/ alone), is a pronunciation of that word. The decoders
(`ctc_lexicon`, `ctc_open`) search their tries over phoneme units unchanged; a decoded
pronunciation becomes its most frequent word. The limits: homophones ("to", "two", "too": the
prior has no bigrams, so the commonest wins) and words outside the table (spelt as their
phonemes, always counted wrong).

Units are espeak-ng's en-us phoneme names without stress marks or variant digits (`'E` → `E`,
`@2` → `@`), pauses dropped; each stands for one private-use character in the recogniser's
vocabulary, so the HF character tokenizer, the CTC loss and both decoders work on them as on
letters. The reference accent is en-us whatever the speaker's: the acoustic model learns to map
every accent onto it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Set
from pathlib import Path

from tqdm import tqdm

from interp.corpus.espeak import run_phonemes
from interp.instruments.ctc_open import WordList
from interp.instruments.text import normalize_text

PHONEMES = "phonemes.json"
PRONUNCIATIONS = "pronunciations.tsv"
VOICE = "en-us"
_FIRST = 0xE000  # Unicode private-use area: no letter or tokenizer special lives there


def canonical(symbol: str) -> str | None:
    """An espeak-ng phoneme name as a unit: stress marks and variant digits stripped; None for
    a pause or an empty name."""
    s = symbol.strip().lstrip("',%=")
    s = re.sub(r"\d+$", "", s)
    return None if not s or s.startswith("_") else s


def word_phonemes(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(word, its units as espeak-ng says it in this sentence) for each word of
    `normalize_text(text)`. The words are phonemized as one run, so each gets its in-context
    form; where espeak-ng splits the run into another number of words, each word alone."""
    words = normalize_text(text).split()
    if not words:
        return []
    spoken = run_phonemes(" ".join(words), VOICE)
    if len(spoken) != len(words):
        spoken = tuple(tuple(p for w in run_phonemes(word, VOICE) for p in w) for word in words)
    return [(w, tuple(u for s in ph if (u := canonical(s)))) for w, ph in
            zip(words, spoken, strict=True)]


class Pronunciations:
    """Phoneme units and the words each spelling stands for.

    `units`: the unit names, in vocabulary order; `table`: spelling (a string of unit
    characters) → {word: natural-log prior}. A word may have several spellings (citation and
    weak forms), a spelling several words (homophones)."""

    def __init__(self, units: Iterable[str], table: dict[str, dict[str, float]]):
        self.units = list(dict.fromkeys(units))
        if not self.units:
            raise ValueError("a phoneme recogniser needs at least one unit")
        self.char = {u: chr(_FIRST + i) for i, u in enumerate(self.units)}
        self.unit = {c: u for u, c in self.char.items()}
        self.table = table
        self.best = {s: _most_probable(ws) for s, ws in table.items() if ws}
        self.spellings: dict[str, list[str]] = {}
        for s, ws in table.items():
            for w in ws:
                self.spellings.setdefault(w, []).append(s)

    def spell(self, units: Iterable[str]) -> str:
        """Units as the recogniser's characters (a unit not in the inventory is dropped)."""
        return "".join(self.char[u] for u in units if u in self.char)

    def names(self, spelling: str) -> str:
        """A spelling as its unit names, space-separated (for files and people)."""
        return " ".join(self.unit[c] for c in spelling if c in self.unit)

    def label(self, text: str) -> str:
        """The training target of a transcript: each word's in-context spelling, space between
        words (the tokenizer's word delimiter). Needs espeak-ng."""
        return " ".join(s for _, ph in word_phonemes(text) if (s := self.spell(ph)))

    def spell_word(self, word: str) -> str:
        """A word's first known spelling, else its citation form from espeak-ng."""
        known = self.spellings.get(word)
        return known[0] if known else "".join(self.spell(ph) for _, ph in word_phonemes(word))

    def word(self, spelling: str, among: Set[str] | None = None) -> str:
        """The most probable word spelt so (of `among` when given); an unknown spelling comes
        out as its unit letters run together: one word, never a listed one."""
        if among is None:
            if spelling in self.best:
                return self.best[spelling][0]
        elif ws := {w: p for w, p in self.table.get(spelling, {}).items() if w in among}:
            return _most_probable(ws)[0]
        return "".join(ch for u in self.names(spelling).split() for ch in u if ch.isalpha()
                       ).lower() or "unk"

    def words(self, decoded: str, among: Set[str] | None = None) -> str:
        """A decoded transcript of spellings (space-separated) as words."""
        return " ".join(self.word(s, among) for s in decoded.split())

    def wordlist(self) -> WordList:
        """The open decoder's list over spellings: each spelling's prior is its best word's."""
        return WordList({s: p for s, (_, p) in self.best.items()}, alphabet=None)

    def vocab(self) -> dict[str, int]:
        """The recogniser's token vocabulary: CTC blank, unknown, word delimiter, the units."""
        return {"<pad>": 0, "<unk>": 1, "|": 2,
                **{self.char[u]: i + 3 for i, u in enumerate(self.units)}}

    @classmethod
    def build(cls, words: WordList, texts: Iterable[str], quiet: bool = False) -> Pronunciations:
        """Citation forms of every listed word, and the in-context forms of every word of
        `texts` (a word the list lacks gets the list's lowest prior). Needs espeak-ng; about 2 ms
        a word."""
        floor = min(words.logp.values())
        forms: dict[tuple[str, ...], dict[str, float]] = {}

        def add(word: str, units: tuple[str, ...]) -> None:
            if units:
                forms.setdefault(units, {})[word] = words.logp.get(word, floor)

        for w in tqdm(sorted(words.logp), desc="pronunciations", disable=quiet):
            add(w, tuple(u for part in run_phonemes(w, VOICE) for s in part if (u := canonical(s))))
        for t in texts:
            for w, units in word_phonemes(t):
                add(w, units)
        return cls._from_forms(sorted({u for f in forms for u in f}), forms)

    @classmethod
    def _from_forms(cls, units: list[str],
                    forms: dict[tuple[str, ...], dict[str, float]]) -> Pronunciations:
        """The table of `forms` (unit names → words), spelt in the characters of `units`."""
        spell = cls(units, {}).spell
        return cls(units, {spell(f): ws for f, ws in forms.items()})

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        (folder / PHONEMES).write_text(json.dumps({"units": self.units, "voice": VOICE}) + "\n")
        rows = sorted((self.names(s), w, p) for s, ws in self.table.items() for w, p in ws.items())
        (folder / PRONUNCIATIONS).write_text("".join(f"{n}\t{w}\t{p:.4f}\n" for n, w, p in rows))

    @classmethod
    def load(cls, folder: str | Path) -> Pronunciations | None:
        """The recogniser's phoneme units and table; None for a letter recogniser."""
        folder = Path(folder)
        if not (folder / PHONEMES).exists():
            return None
        forms: dict[tuple[str, ...], dict[str, float]] = {}
        path = folder / PRONUNCIATIONS
        for line in (path.read_text().splitlines() if path.exists() else []):
            names, w, p = line.split("\t")
            forms.setdefault(tuple(names.split()), {})[w] = float(p)
        return cls._from_forms(json.loads((folder / PHONEMES).read_text())["units"], forms)


def _most_probable(words: dict[str, float]) -> tuple[str, float]:
    """The (word, prior) of highest prior; ties go to the alphabetically last word."""
    return max(words.items(), key=lambda kv: (kv[1], kv[0]))
