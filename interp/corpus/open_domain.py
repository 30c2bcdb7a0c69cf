"""Open English sentences beside the planted-concept grammar, so a model learns to read any text.

The grammar of `sentences.py` carries the ground truth but has ~600 words: a model trained on it
babbles on anything else. This generator draws thousands of common words (wordfreq's top English
words, sorted into nouns, verbs, adjectives and adverbs and inflected with lemminflect, all
offline package data), names and places (faker's en_US lists), numbers written as words, into
statements, questions, imperatives and subordinate clauses of 4–16 words.

Held-out words: a seeded share of the vocabulary never appears in a training sentence, and every
held-out sentence has at least one such word, so a held-out set measures reading unseen words.
Everything is deterministic in the seed (and the installed wordfreq, lemminflect and faker).

The recogniser's open-domain card set comes from a second source
(`interp.instruments.open_text`: essential-generators' Markov chain over encyclopaedic prose,
plus everyday questions): two independent kinds of open English, so a figure on one is not a
property of one generator's sentence shapes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from interp.corpus.sentences import TEMPLATES, lexicon

CLASSES = ("N", "V", "A", "R")  # noun, verb, adjective, -ly adverb
# Offensive or disturbing words: slurs and insults, sex, violence, death, drugs, and the names of
# groups of people (random combinations must not say things about them). Matched exactly or, for
# the stems in BLOCKED_STEMS, as a word's beginning.
BLOCKLIST = frozenset({
    "abortion", "abuse", "abused", "alcohol", "anal", "anus", "arse", "ass", "bastard", "bitch",
    "black", "blacks", "blowjob", "bomb", "bombing", "boob", "boobs", "booty", "bra", "breast",
    "breasts", "bum", "butt", "cancer", "catholic", "catholics", "christian", "christians",
    "cocaine", "cock", "corpse", "crap", "cripple", "cum", "damn", "dead", "death", "devil",
    "dick", "die", "dildo", "disabled", "dope", "drug", "drugs", "drunk", "dumb", "dying",
    "erotic", "fag", "fanny", "fat", "fetus", "gay", "gays", "genocide", "god", "gun", "guns",
    "gypsies", "gypsy", "handicapped", "hell", "heroin", "homosexual", "homosexuals", "hooker",
    "horny", "hostage", "idiot", "immigrant", "immigrants", "islam", "jew", "jews", "jewish",
    "kidnap", "kill", "killed", "killer", "killing", "lesbian", "lust", "massacre", "molest",
    "moron", "murder", "murdered", "murderer", "muslim", "muslims", "naked", "nazi", "negro",
    "nipple", "nude", "obese", "orgasm", "penis", "pimp", "porn", "pregnant", "prostitute",
    "pussy", "racist", "rape", "raped", "rapist", "refugee", "refugees", "retard", "retarded",
    "rifle", "sex", "sexual", "sexy", "shit", "shoot", "shooting", "slave", "slavery", "slut",
    "stab", "strangle", "stupid", "suicide", "terror", "terrorist", "testicle", "tits",
    "torture", "ugly", "vagina", "vaginal", "victim", "victims", "weapon", "weapons", "weed",
    "white", "whites", "whore",
})
BLOCKED_STEMS = ("fuck", "shit", "bitch", "cunt", "nigg", "porn", "rape", "masturb", "pedo",
                 "sexual", "whore", "slut", "vagin", "penis", "dick")

# The sentence grammar: a symbol's alternatives, one picked uniformly (repeat one to weight it).
# Upper-case tokens are symbols, the lexical ones filled by `OpenDomain._word`; the rest is text.
GRAMMAR: dict[str, tuple[str, ...]] = {
    "S": ("STATEMENT .", "STATEMENT .", "STATEMENT .", "COMPLEX .", "COMPLEX .", "COMPLEX .",
          "QUESTION ?", "QUESTION ?", "QUESTION ?", "IMPERATIVE .", "IMPERATIVE ."),
    "STATEMENT": ("CLAUSE", "CLAUSE", "CLAUSE TIME", "TIME , CLAUSE", "CLAUSE PP"),
    "COMPLEX": ("SUB CLAUSE , CLAUSE", "SUB CLAUSE , CLAUSE", "CLAUSE SUB CLAUSE",
                "CLAUSE SUB CLAUSE", "CLAUSE SUB CLAUSE", "SUBJ said that CLAUSE",
                "CLAUSE , but CLAUSE", "CLAUSE , and CLAUSE", "SUBJ knew why CLAUSE",
                "SUBJ asked whether CLAUSE", "the N that SUBJ VD was A",
                "SUBJ VD OBJ , which was A", "I think that CLAUSE", "SUBJ wondered if CLAUSE"),
    "CLAUSE": ("SUBJ VD OBJ", "SUBJ VD OBJ PP", "SUBJ VD PP", "SUBJ VD OBJ R", "SUBJ R VD OBJ",
               "SING VZ OBJ", "SING VZ OBJ PP", "PLUR V OBJ", "PLUR V PP",
               "SUBJ MODAL V OBJ", "SUBJ MODAL V OBJ PP", "SUBJ MODAL R V OBJ",
               "SING is A", "SING was very A", "PLUR were A", "PLUR are A", "SING seems A",
               "there was DET A N PP", "there were NUM NS PP", "SUBJ was VG OBJ",
               "PLUR were VG PP", "SUBJ wanted to V OBJ", "SUBJ tried to V OBJ PP",
               "it was A to V OBJ", "SING has NUM NS", "SUBJ paid NUM dollars for OBJ",
               "SUBJ moved to PLACE in YEAR"),
    "QUESTION": ("did SUBJ V OBJ", "did SUBJ V OBJ PP TIME", "MODAL SUBJ V OBJ", "is SING A",
                 "are PLUR A", "was SING VG OBJ", "WH did SUBJ V OBJ", "WH did SUBJ V PP",
                 "what did SUBJ V", "who VD OBJ", "which N did SUBJ V", "how many NS did SUBJ V",
                 "how A is SING", "what does SING V", "where are PLUR", "do you think that CLAUSE",
                 "have you ever VD DET A N", "is it true that CLAUSE"),
    "IMPERATIVE": ("please V OBJ", "V OBJ PP", "please V OBJ PP TIME", "V OBJ R", "never V OBJ",
                   "please do not V OBJ", "let us V OBJ TIME", "V DET A N and V it PP",
                   "tell NAME that CLAUSE", "ask NAME about DET N", "R V OBJ",
                   "remember to V OBJ TIME"),
    "SUBJ": ("SING", "SING", "PLUR", "I", "you", "we"),
    "SING": ("DET N", "DET A N", "the A A N", "NAME", "NAME LAST", "he", "she",
             "the N of NAME", "DET N PREP DET N"),
    "PLUR": ("the NS", "NUM NS", "they", "NAME and NAME", "many A NS", "some NS", "the A NS"),
    "OBJ": ("DET N", "DET A N", "the NS", "NUM A NS", "NAME", "him", "her", "them", "it",
            "DET N of NAME", "DET A N PREP DET N"),
    "PP": ("PREP DET N", "PREP DET A N", "PREP the NS", "in PLACE", "to PLACE", "from PLACE",
           "near DET N", "PREP NAME"),
    "DET": ("the", "the", "a", "this", "that", "my", "your", "his", "her", "our", "their",
            "every", "one", "another"),
    "PREP": ("in", "on", "near", "behind", "under", "with", "without", "beside", "across",
             "through", "after", "before", "around", "over", "at", "into", "from", "for",
             "about", "against", "between"),
    "TIME": ("yesterday", "today", "tomorrow", "last night", "this morning", "on DAY",
             "in YEAR", "at HOUR", "every DAY", "NUM days ago", "next week", "in the evening",
             "at HOUR in the morning", "before the end of MONTH"),
    "MODAL": ("will", "can", "should", "might", "must", "could", "would"),
    "SUB": ("because", "when", "although", "while", "before", "after", "since", "if", "unless",
            "as soon as", "even though"),
    "WH": ("why", "where", "when", "how"),
    "DAY": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "MONTH": ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"),
}
_FORM = {"N": ("N", 0), "NS": ("N", 1), "V": ("V", 0), "VD": ("V", 1), "VZ": ("V", 2),
         "VG": ("V", 3), "A": ("A", 0), "R": ("R", 0)}
_PUNCT = frozenset(",.?")
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """`n` (0 – 999,999) in words, US style: 342 → "three hundred forty two"."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"{n}: only 0 to 999,999 are written out")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return f"{_ONES[n // 100]} hundred" + (f" {number_words(rest)}" if rest else "")
    rest = n % 1000
    return f"{number_words(n // 1000)} thousand" + (f" {number_words(rest)}" if rest else "")


def year_words(year: int) -> str:
    """A year as it is said: 1984 → "nineteen eighty four", 2007 → "two thousand seven"."""
    hi, lo = divmod(year, 100)
    if 2000 <= year < 2010:
        return number_words(year)
    return f"{number_words(hi)} " + ("hundred" if lo == 0 else
                                     f"oh {_ONES[lo]}" if lo < 10 else number_words(lo))


def words_of(text: str) -> list[str]:
    """The lower-case words of a sentence (what held-out checks compare)."""
    return re.findall(r"[a-z]+", text.lower())


def _clean(word: str) -> bool:
    return (word not in BLOCKLIST and not word.startswith(BLOCKED_STEMS)
            and re.fullmatch(r"[a-z]+", word) is not None)


@lru_cache(maxsize=2)
def vocabulary(top_words: int) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Entries by class ("N", "V", "A", "R"): each a tuple of surface forms, lemma first (nouns:
    singular, plural; verbs: base, past, 3rd singular, -ing), from wordfreq's `top_words` most
    frequent English words; sorted, so independent of hash order."""
    import wordfreq
    from lemminflect import getAllLemmas, getInflection

    out: dict[str, set[tuple[str, ...]]] = {c: set() for c in CLASSES}
    for w in wordfreq.top_n_list("en", top_words):
        if len(w) < 3 or not _clean(w):
            continue
        lem = {k: v for k, v in getAllLemmas(w).items() if w in v}
        if "NOUN" in lem and (pl := getInflection(w, "NNS")) and _clean(pl[0]):
            out["N"].add((w, pl[0]))
        if "VERB" in lem:
            forms = (w, *(next(iter(getInflection(w, t)), "") for t in ("VBD", "VBZ", "VBG")))
            # a real verb: its past tense is a common word in its own right (not "candied")
            if all(map(_clean, forms)) and wordfreq.zipf_frequency(forms[1], "en") >= 3.0:
                out["V"].add(forms)
        if "ADJ" in lem and not {"NOUN", "VERB"} & lem.keys():
            out["A"].add((w,))
        if "ADV" in lem and w.endswith("ly") and len(lem) == 1:
            out["R"].add((w,))
    return {c: tuple(sorted(v)) for c, v in out.items()}


@lru_cache(maxsize=1)
def names() -> dict[str, tuple[str, ...]]:
    """First names, last names and places (US states, one- or two-word countries) from faker's
    en_US data lists, sorted."""
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.person.en_US import Provider as Person

    def plain(items: Iterable[str], pattern: str = r"[A-Z][a-z]+") -> tuple[str, ...]:
        return tuple(sorted({s for s in items if re.fullmatch(pattern, s)
                             and all(_clean(w) for w in words_of(s))}))

    two = r"[A-Z][a-z]+( [A-Z][a-z]+)?"
    return {"NAME": plain(Person.first_names), "LAST": plain(Person.last_names),
            "PLACE": plain([*Address.states, *Address.countries], two)}


def grammar_words() -> frozenset[str]:
    """Every word the planted-concept grammar and the open grammar's own text use: these stay in
    training (never held out)."""
    text = " ".join([*TEMPLATES, *(w for ws in lexicon().values() for w in ws),
                     *(a for alts in GRAMMAR.values() for a in alts)])
    return frozenset(words_of(text))


@dataclass(frozen=True)
class OpenDomainConfig:
    """The open-domain generator's vocabulary, held-out share and sentence length."""

    top_words: int = 20000
    """wordfreq's most frequent English words the vocabulary is drawn from"""
    heldout_word_frac: float = 0.05
    """share of the vocabulary (lemmas) that never appears in a training sentence"""
    heldout_pick: float = 0.35
    """in a held-out sentence, chance that a word slot draws a held-out word"""
    min_words: int = 4
    """shortest sentence, in words"""
    max_words: int = 16
    """longest sentence, in words"""
    seed: int = 0
    """seed of the held-out split and of every sentence"""


class OpenDomain:
    """Seeded open-English sentences: `sentences(n)` for training, `sentences(n, heldout=True)`
    for held-out sentences that each contain at least one of `heldout_words`."""

    def __init__(self, cfg: OpenDomainConfig, vocab: dict[str, tuple[tuple[str, ...], ...]],
                 name_lists: dict[str, tuple[str, ...]], reserved: frozenset[str]):
        self.cfg = cfg
        # a lemma any of whose forms (in any class) is reserved is never held out
        taken = {e[0] for c in CLASSES for e in vocab[c] if reserved.intersection(e)}
        lemmas = sorted({e[0] for c in CLASSES for e in vocab[c]} - taken)
        rng = random.Random(f"open-heldout:{cfg.seed}")
        held = set(rng.sample(lemmas, round(len(lemmas) * cfg.heldout_word_frac)))
        entries = {c: [e for e in vocab[c] if e[0] in held] for c in CLASSES}
        self.heldout_words = frozenset(w for es in entries.values() for e in es for w in e)
        self.pools = {False: {c: [e for e in vocab[c] if not self.heldout_words.intersection(e)]
                              for c in CLASSES},
                      True: entries}
        self.names = {k: [s for s in v if not self.heldout_words.intersection(words_of(s))]
                      for k, v in name_lists.items()}
        if empty := [c for c in CLASSES if not self.pools[False][c]]:
            raise ValueError(f"no {'/'.join(empty)} words among wordfreq's top {cfg.top_words}: "
                             "give a larger --top-words")

    def _word(self, symbol: str, rng: random.Random, heldout: bool) -> str:
        if symbol in self.names:
            return rng.choice(self.names[symbol])
        if symbol in ("NUM", "HOUR", "YEAR"):
            return (number_words(rng.choice((rng.randint(2, 12), rng.randint(13, 999))))
                    if symbol == "NUM" else number_words(rng.randint(1, 12))
                    if symbol == "HOUR" else year_words(rng.randint(1900, 2029)))
        cls, form = _FORM[symbol]
        use_held = heldout and self.pools[True][cls] and rng.random() < self.cfg.heldout_pick
        return rng.choice(self.pools[use_held][cls])[form]

    def _expand(self, symbol: str, rng: random.Random, heldout: bool) -> list[str]:
        if symbol not in GRAMMAR:
            return self._word(symbol, rng, heldout).split()
        out: list[str] = []
        for tok in rng.choice(GRAMMAR[symbol]).split():
            is_symbol = tok.isupper() and tok != "I"
            out += self._expand(tok, rng, heldout) if is_symbol else [tok]
        return out

    def sentence(self, rng: random.Random, heldout: bool = False) -> str | None:
        """One sentence, or None when this draw is out of length or (held out) has no held-out
        word; the caller draws again."""
        toks = self._expand("S", rng, heldout)
        for i, t in enumerate(toks[:-1]):  # "a apple" → "an apple" (by spelling: near enough)
            if t == "a" and toks[i + 1][0] in "aeiou" and not toks[i + 1].startswith(
                    ("uni", "use", "usu", "one", "eu")):
                toks[i] = "an"
        words = [t for t in toks if t not in _PUNCT]
        if not self.cfg.min_words <= len(words) <= self.cfg.max_words:
            return None
        if heldout != bool(self.heldout_words.intersection(words_of(" ".join(words)))):
            return None
        text = " ".join(toks)
        for p in _PUNCT:
            text = text.replace(f" {p}", p)
        return text[0].upper() + text[1:]

    def sentences(self, n: int, heldout: bool = False) -> list[str]:
        """`n` distinct sentences, deterministic in the seed (held-out ones from their own
        stream, so the training sentences do not depend on how many are held out)."""
        if n < 0:
            raise ValueError(f"asked for {n} sentences: give a non-negative number")
        rng = random.Random(f"open-{'heldout' if heldout else 'train'}:{self.cfg.seed}")
        seen: dict[str, None] = {}
        for _ in range(100 * n + 1000):
            if len(seen) == n:
                return list(seen)
            if (s := self.sentence(rng, heldout)) is not None:
                seen.setdefault(s, None)
        raise ValueError(f"the open-domain generator ran out of distinct sentences at "
                         f"{len(seen)} of {n}; ask for fewer")


def open_domain(cfg: OpenDomainConfig = OpenDomainConfig(),
                reserved: Iterable[str] = ()) -> OpenDomain:
    """The generator of `cfg`; `reserved` words (with the grammars' own, `grammar_words`) are
    never held out, e.g. the instructions' words, which every split hears."""
    keep = grammar_words() | {w for r in reserved for w in words_of(r)}
    return OpenDomain(cfg, vocabulary(cfg.top_words), names(), keep)
