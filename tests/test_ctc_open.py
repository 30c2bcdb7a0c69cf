"""Open-vocabulary CTC decoding on hand-made frame posteriors, and its word list."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp.instruments.asr import VOCAB
from interp.instruments.ctc_open import OpenBeamConfig, OpenDecoder, WordList, decode_modes
from tests.test_ctc_lexicon import frames

WORDS = WordList.from_counts({"the": 1000, "cat": 50, "cut": 5, "sat": 40, "hello": 30,
                              "catalogue": 1})
DEC = OpenDecoder(WORDS, VOCAB)


def test_clean_spelling_decodes_in_both_modes():
    lp = frames("t", "h", "e", "|", "c", "<pad>", "a", "t", "|", "s", "a", "t")
    assert decode_modes(DEC, lp) == {"wordlist": "the cat sat", "open": "the cat sat"}


def test_the_prior_breaks_an_acoustic_tie_towards_the_common_word():
    # "a" and "u" equally likely: cat (50) beats cut (5); flip the counts and it flips
    lp = frames("c", {"a": 0.45, "u": 0.45}, "t")
    assert DEC.decode(lp) == "cat"
    flipped = OpenDecoder(WordList.from_counts({"cat": 5, "cut": 50}), VOCAB)
    assert flipped.decode(lp) == "cut"


def test_open_mode_spells_a_clear_unlisted_word_and_closed_mode_cannot():
    zorp = frames(*[{c: 0.999} for c in "zzoorrpp"])
    assert DEC.decode(zorp, allow_oov=True) == "zorp"
    assert DEC.decode(zorp, allow_oov=False) != "zorp"
    assert decode_modes(DEC, zorp)["open"] == "zorp"


def test_unlisted_words_are_not_merged_across_a_delimiter():
    lp = frames(*[{c: 0.999} for c in "zorp|blik"])
    assert DEC.decode(lp) == "zorp blik"


def test_words_run_together_are_split_and_silence_is_empty():
    assert DEC.decode(frames("t", "h", "e", "c", "a", "t")) == "the cat"
    assert DEC.decode(frames("<pad>", "<pad>")) == ""


def test_word_list_save_load_and_errors(tmp_path):
    path = tmp_path / "words.tsv"
    WORDS.save(path)
    loaded = WordList.load(path)
    assert set(loaded.logp) == set(WORDS.logp) and len(loaded) == 6
    assert all(abs(loaded.logp[w] - WORDS.logp[w]) < 1e-3 for w in WORDS.logp)
    assert math.isclose(sum(math.exp(p) for p in WORDS.logp.values()), 1.0, rel_tol=1e-9)
    assert loaded.best["ca"] == loaded.logp["cat"]  # a prefix scores as its best word
    with pytest.raises(ValueError, match="word list is empty"):
        WordList({"USA": -1.0, "42": -2.0})


def test_lm_weight_zero_leaves_the_acoustics_in_charge():
    lp = frames("c", {"a": 0.40, "u": 0.50}, "t")
    flat = OpenDecoder(WORDS, VOCAB, cfg=OpenBeamConfig(lm_weight=0.0))
    assert flat.decode(lp) == "cut" and DEC.decode(lp) == "cat"
    assert np.isfinite(lp).all()
