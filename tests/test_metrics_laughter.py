"""Laughter instrument: tiny training run, save → load → identical frames, shapes, shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

from interp.corpus.table import load_audio, load_table
from interp.instruments import laughter
from interp.instruments.common import InstrumentError, instrument_dir
from interp.instruments.data import ClipPool

TINY = laughter.LaughterConfig(n_mels=32, channels=4, rnn=8, steps=3, batch_size=4, crop_s=1.0,
                               warmup=1)


@pytest.fixture(scope="module")
def tiny_laughter(tiny_corpus, tmp_path_factory):
    rows = load_table(tiny_corpus, "train")
    det = laughter.new_detector(TINY)
    history = laughter.train(det, ClipPool(tiny_corpus, rows, {}, 0.0), TINY)
    assert history["steps"] == TINY.steps and np.isfinite(history["final_loss"])
    out = tmp_path_factory.mktemp("laughter")
    det.save(out)
    return det, out


def test_save_load_identical_frames(tiny_laughter, tiny_corpus):
    det, out = tiny_laughter
    loaded = laughter.LaughterDetector.load(out)
    audio, sr = load_audio(tiny_corpus, load_table(tiny_corpus, "heldout_voices")[0])
    p, q = det.frame_probs(audio, sr), loaded.frame_probs(audio, sr)
    assert p.shape == (-(-len(audio) // 640),)  # 25 Hz frames
    assert ((p >= 0) & (p <= 1)).all() and np.allclose(p, q, atol=1e-6)
    assert 0.0 <= det.score(audio, sr) <= 1.0 and det.score(audio, sr) == loaded.score(audio, sr)
    assert all(0 <= s < e for s, e in det.spans(audio, sr))


def test_evaluate_reports_goal_figures(tiny_laughter, tiny_corpus):
    det, _ = tiny_laughter
    clips = [(load_audio(tiny_corpus, r)[0], r) for r in load_table(tiny_corpus, "heldout_voices")]
    f = laughter.evaluate(det, clips)
    assert f["n"] == len(clips) and 0 <= f["utterance_accuracy"] <= 1
    assert {"frame", "span_iou0.5"} <= set(f) and 0 <= f["span_iou0.5"]["f1"] <= 1


def test_errors(tiny_laughter, tmp_path):
    det, _ = tiny_laughter
    with pytest.raises(InstrumentError, match="NaN"):
        det.score(np.full(16000, np.nan, np.float32), 16000)
    with pytest.raises(FileNotFoundError, match="no laughter weights"):
        laughter.LaughterDetector.load(tmp_path)


SHIPPED = instrument_dir(laughter.NAME)


@pytest.mark.skipif(not (SHIPPED / laughter.WEIGHTS).exists(), reason="no shipped weights")
def test_shipped_weights_on_heldout_voices(tiny_corpus):
    det = laughter.LaughterDetector.load(SHIPPED)
    rows = load_table(tiny_corpus, "heldout_voices")
    right = sum((det.score(*load_audio(tiny_corpus, r)) > 0.5)
                == any(t["tag"] == "laughter" for t in r["tags"]) for r in rows)
    assert right >= len(rows) - 1, f"{right} of {len(rows)} held-out utterances right"
