"""Seeded open-domain English sentences, to measure (and train) the recogniser beyond the grammar.

The corpus grammar has 314 words; a recogniser measured only on it says nothing about the first
sentence a user types. This source walks the word-trigram Markov chain that the
`essential-generators` package ships (trained on Wikipedia-like prose: thousands of distinct
words, names, varied syntax) from a sentence start to a sentence end, and mixes in short
conversational questions and greetings (which encyclopaedic text lacks). Sentences with digits,
acronyms or symbols are skipped: espeak reads "1990" or "USA" in words the reference text would
not contain, which would count as recogniser errors.

It lives with the instruments (not in `interp.corpus`) because it only feeds their evaluation and
training; the TinyCosy corpus gets its own open-domain generator.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

_WORD = re.compile(r"^[A-Za-z][a-z']*[a-z]?[,;:]?$|^[A-Za-z]$")
_END = re.compile(r"[.?!]$")
# Abbreviations espeak expands ("Mr" → "mister"): the reference would not match what is said.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "jr", "sr", "st", "vs", "etc", "inc", "ltd",
                           "vol", "ft", "mt"})

GREETINGS = ("Hello", "Hi", "Good morning", "Good evening", "Excuse me", "Well", "Sorry")
QUESTIONS = (
    "how are you {when}", "what are you doing {when}", "where did you put the {thing}",
    "can you help me with the {thing}", "do you want to {verb} {when}",
    "why did they {verb} the {thing}", "who is going to {verb} {when}",
    "would you like some {food}", "is the {thing} still in the {place}",
    "have you seen my {thing}", "when does the {place} open", "could we {verb} after {meal}")
STATEMENTS = (
    "the weather is {adj} and the children are playing outside",
    "I think we should {verb} before {meal}", "my {relative} bought a {adj} {thing} {when}",
    "please leave the {thing} near the {place}", "we are going to the {place} {when}",
    "thank you for the {food}, it was {adj}")
SLOTS = {
    "when": ("today", "tomorrow", "tonight", "this morning", "next week", "on Sunday", "later"),
    "thing": ("umbrella", "phone", "ticket", "bicycle", "computer", "guitar", "jacket", "keys",
              "camera", "letter", "newspaper", "suitcase"),
    "verb": ("leave", "travel", "cook", "dance", "paint", "call", "visit", "finish", "start",
             "clean", "borrow", "answer"),
    "food": ("coffee", "soup", "bread", "chocolate", "tea", "pizza", "oranges", "cheese"),
    "place": ("library", "garden", "museum", "hospital", "airport", "office", "bakery",
              "theatre"),
    "meal": ("breakfast", "lunch", "dinner", "supper"),
    "adj": ("wonderful", "terrible", "strange", "delicious", "quiet", "expensive", "lovely",
            "beautiful", "cold", "bright"),
    "relative": ("brother", "cousin", "grandmother", "neighbour", "uncle", "daughter"),
}


def markov_chain_path() -> Path:
    """The Markov model file of the essential-generators package (a clear error without it)."""
    try:
        import essential_generators
    except ImportError as exc:
        raise ImportError("open-domain sentences need the essential-generators package: "
                          "pip install essential-generators") from exc
    return Path(essential_generators.__file__).parent / "markov_textgen.json"


@lru_cache(maxsize=1)
def load_chain(path: str | None = None) -> dict[str, tuple[list[str], list[float]]]:
    """bigram "w1 w2" → (next words, weights); ~300k bigrams, ~5 s and ~0.5 GB to load once."""
    raw = json.loads(Path(path or markov_chain_path()).read_text(encoding="utf-8"))
    return {k: (v["transitions"], v["weights"]) for k, v in raw.items() if v.get("transitions")}


def clean(words: list[str]) -> str | None:
    """The words as one speakable sentence, or None when any word is not plain English letters
    (digits, acronyms, symbols, brackets) or the sentence does not end a sentence."""
    if not words or not _END.search(words[-1]):
        return None
    body = [w.rstrip(".?!") for w in words]
    for w in body:
        if not _WORD.match(w) or (len(w) > 1 and w[:2].isupper()):
            return None
        if w.rstrip(",;:").lower() in ABBREVIATIONS:
            return None
    text = " ".join(body)
    return text[0].upper() + text[1:] + words[-1][-1]


def markov_sentence(chain: dict, rng: random.Random, min_words: int, max_words: int,
                    starts: list[str]) -> str | None:
    """One walk of the chain from a sentence-start bigram; None when it fails to end cleanly."""
    words = rng.choice(starts).split()
    while len(words) < max_words:
        if _END.search(words[-1]):
            break
        nxt = chain.get(f"{words[-2]} {words[-1]}")
        if nxt is None:
            return None
        words.append(rng.choices(nxt[0], weights=nxt[1])[0])
    return clean(words) if len(words) >= min_words else None


def conversational(rng: random.Random) -> str:
    """A short question or statement of everyday speech, from templates and slot lists."""
    if rng.random() < 0.6:
        body, end = rng.choice(QUESTIONS), "?"
    else:
        body, end = rng.choice(STATEMENTS), "."
    text = re.sub(r"\{(\w+)\}", lambda m: rng.choice(SLOTS[m.group(1)]), body)
    if rng.random() < 0.3:
        return f"{rng.choice(GREETINGS)}, {text}{end}"
    return text[0].upper() + text[1:] + end


def _template_pattern(template: str) -> str:
    parts = re.split(r"\{(\w+)\}", template)
    return "".join(re.escape(p) if i % 2 == 0 else "(?:" + "|".join(map(re.escape, SLOTS[p])) + ")"
                   for i, p in enumerate(parts))


_CONVERSATIONAL = re.compile(
    r"(?:(?:" + "|".join(map(re.escape, GREETINGS)) + r"), )?(?:"
    + "|".join(_template_pattern(t) for t in QUESTIONS + STATEMENTS) + r")[.?]", re.IGNORECASE)


def is_conversational(sentence: str) -> bool:
    """Whether a sentence comes from the everyday templates (else: the Markov chain)."""
    return _CONVERSATIONAL.fullmatch(sentence) is not None


def open_sentences(n: int, seed: int, *, chain: dict | None = None, min_words: int = 4,
                   max_words: int = 14, conversational_share: float = 0.2,
                   exclude: frozenset[str] = frozenset()) -> list[str]:
    """`n` distinct seeded open-domain sentences (none in `exclude`), a `conversational_share`
    of them from the everyday templates, the rest from the Markov chain."""
    chain = load_chain() if chain is None else chain
    starts = sorted(k for k in chain if k[:1].isupper() and k.split()[0][-1:] not in ".?!,")
    if not starts:
        raise ValueError("the Markov chain has no sentence-start bigram (capitalised first word)")
    rng = random.Random(seed)
    out: dict[str, None] = {}
    for _ in _tries(n):
        if len(out) == n:
            return list(out)
        s = (conversational(rng) if rng.random() < conversational_share
             else markov_sentence(chain, rng, min_words, max_words, starts))
        if s is not None and s not in exclude:
            out.setdefault(s)
    raise ValueError(f"found only {len(out)} of {n} clean sentences; is the chain too small?")


def _tries(n: int) -> Iterator[int]:
    return iter(range(200 * n + 1000))
