"""Sentence grammar and the synthetic laughter/breath events."""

from __future__ import annotations

import numpy as np
import pytest

from interp.audio.pitch import f0_track, median_f0
from interp.corpus.nonverbal import breath, laughter
from interp.corpus.sentences import generate_sentences


def test_sentences_distinct_and_deterministic():
    s = generate_sentences(3000, seed=3)
    assert len(set(s)) == 3000 and s == generate_sentences(3000, seed=3)
    assert s != generate_sentences(3000, seed=4)
    assert all(4 <= len(x.split()) <= 16 and x[0].isupper() for x in s)
    with pytest.raises(ValueError):
        generate_sentences(0)


@pytest.mark.parametrize(("f0", "female"), [(100.0, False), (200.0, True)])
def test_laughter_is_voiced_around_speaker_pitch(f0, female):
    sr = 16000
    audio = laughter(f0, sr, np.random.default_rng(0), female)
    assert 0.3 < len(audio) / sr < 1.6
    pitch = median_f0(audio, sr)
    assert f0 * 1.05 < pitch < f0 * 1.8  # raised, as laughs are, but the speaker's own range
    _, track = f0_track(audio, sr)
    voiced = (track > 0).mean()
    assert 0.2 < voiced < 0.9  # bursts of voicing separated by breathy gaps, not a held vowel


def test_breath_is_unvoiced_noise():
    sr = 16000
    audio = breath(sr, np.random.default_rng(0))
    _, track = f0_track(audio, sr)
    assert (track > 0).mean() < 0.1 and np.abs(audio).max() > 0.05
