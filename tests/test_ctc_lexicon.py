"""Lexicon-constrained CTC beam search on hand-made frame posteriors."""

from __future__ import annotations

import numpy as np
import pytest

from interp.instruments.asr import VOCAB
from interp.instruments.ctc_lexicon import LexiconDecoder


def frames(*spec: str | dict[str, float]) -> np.ndarray:
    """(T, V) log-probs: a string frame puts 0.9 on that token, a dict spreads its mass as given;
    the rest goes to blank (`<pad>`)."""
    out = np.full((len(spec), len(VOCAB)), 1e-6)
    for t, s in enumerate(spec):
        mass = {s: 0.9} if isinstance(s, str) else s
        for tok, p in mass.items():
            out[t, VOCAB[tok]] = p
        out[t, VOCAB["<pad>"]] += 1 - out[t].sum()
    return np.log(out / out.sum(1, keepdims=True))


DEC = LexiconDecoder(["the", "cat", "sat", "catalogue"], VOCAB)


def test_clean_spelling_and_repeats():
    lp = frames("t", "h", "h", "e", "|", "c", "<pad>", "a", "t", "<pad>")
    assert DEC.decode(lp) == "the cat"
    greedy = "".join(k for k, i in VOCAB.items() if i in lp.argmax(1))
    assert "|" in greedy  # sanity: the delimiter is in the frames


def test_near_miss_is_decoded_to_the_known_word():
    # greedy reads "the cet"; the lexicon only allows "cat", whose "a" is the runner-up
    lp = frames("t", "h", "e", "|", "c", {"e": 0.5, "a": 0.4}, "t")
    assert DEC.decode(lp) == "the cat"


def test_words_run_together_are_split():
    lp = frames("t", "h", "e", "c", "a", "t", "s", "a", "t")  # no delimiter at all
    assert DEC.decode(lp) == "the cat sat"


def test_doubled_letters_need_a_blank_between():
    # "t t" with a blank between is two t's; without it, one: "catt" is no word, "cat" is
    assert DEC.decode(frames("c", "a", "t", "t")) == "cat"


def test_unknown_word_and_silence():
    dog = frames(*[{c: 0.999} for c in "ddoooggg"])
    assert DEC.decode(dog) is None  # nothing in the lexicon fits: only silence, far less likely
    assert DEC.decode(frames("<pad>", "<pad>")) == ""
    with pytest.raises(ValueError, match="lexicon is empty"):
        LexiconDecoder([], VOCAB)
