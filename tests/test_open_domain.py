"""Open-domain sentences: deterministic, distinct, varied, clean, and held-out words unseen."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from interp.corpus.open_domain import (
    BLOCKLIST,
    OpenDomainConfig,
    grammar_words,
    number_words,
    open_domain,
    words_of,
    year_words,
)

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_HELD = 3000, 300


@pytest.fixture(scope="module")
def generated():
    gen = open_domain(OpenDomainConfig(seed=3))
    return gen, gen.sentences(N_TRAIN), gen.sentences(N_HELD, heldout=True)


def test_deterministic_in_the_seed_across_processes(generated):
    gen, train, held = generated
    again = open_domain(OpenDomainConfig(seed=3))
    assert again.sentences(N_TRAIN) == train and again.sentences(N_HELD, heldout=True) == held
    assert open_domain(OpenDomainConfig(seed=4)).sentences(50) != train[:50]
    # another process with another string-hash seed: nothing may depend on set order
    code = ("from interp.corpus.open_domain import OpenDomainConfig, open_domain\n"
            "g = open_domain(OpenDomainConfig(seed=3))\n"
            "print('\\n'.join(g.sentences(200) + g.sentences(20, heldout=True)))")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == train[:200] + held[:20]
    assert sorted(gen.heldout_words) == sorted(again.heldout_words)


def test_distinct_varied_and_clean(generated):
    _, train, held = generated
    assert len(set(train)) == N_TRAIN and not set(train) & set(held)
    vocab = Counter(w for s in train for w in words_of(s))
    assert len(vocab) > 3000, "thousands of distinct words"
    lengths = [len(s.split()) for s in train + held]
    assert min(lengths) >= 4 and max(lengths) <= 16 and len(set(lengths)) == 13
    questions = sum(s.endswith("?") for s in train) / N_TRAIN
    assert 0.15 < questions < 0.5
    assert sum(s.startswith(("Please", "Never", "Let us")) for s in train) > 50  # imperatives
    subordinate = ("because", "although", "while", "unless", "whether", "since", "if")
    assert sum(bool(set(subordinate) & set(words_of(s))) for s in train) > 0.06 * N_TRAIN
    numbers = {"hundred", "twenty", "thirty", "seven", "nineteen"}
    assert sum(bool(numbers & set(words_of(s))) for s in train) > 100
    assert not BLOCKLIST & set(vocab)
    assert all(s[0].isupper() and s[-1] in ".?" and "  " not in s and " ," not in s
               for s in train + held)


def test_heldout_words_are_unseen_in_training(generated):
    gen, train, held = generated
    assert len(gen.heldout_words) > 0 and not gen.heldout_words & grammar_words()
    assert all(gen.heldout_words & set(words_of(s)) for s in held), "each has an unseen word"
    assert not any(gen.heldout_words & set(words_of(s)) for s in train)
    # partly unseen: most words of a held-out sentence are ordinary training words
    share = sum(w in gen.heldout_words for s in held for w in words_of(s)) / sum(
        len(words_of(s)) for s in held)
    assert 0.05 < share < 0.5


def test_reserved_words_are_never_held_out():
    gen = open_domain(OpenDomainConfig(seed=3, heldout_word_frac=0.5), ["You are a helpful assistant."])
    assert not {"helpful", "assistant"} & gen.heldout_words
    assert not grammar_words() & gen.heldout_words


def test_numbers_in_words():
    assert [number_words(n) for n in (0, 13, 40, 342, 1000, 70_005)] == [
        "zero", "thirteen", "forty", "three hundred forty two", "one thousand",
        "seventy thousand five"]
    assert [year_words(y) for y in (1984, 2007, 1900, 1905, 2024)] == [
        "nineteen eighty four", "two thousand seven", "nineteen hundred", "nineteen oh five",
        "twenty twenty four"]
    with pytest.raises(ValueError, match="999,999"):
        number_words(10**6)


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="non-negative"):
        open_domain(OpenDomainConfig(seed=3)).sentences(-1)
    with pytest.raises(ValueError, match="--top-words"):
        open_domain(OpenDomainConfig(top_words=30))
