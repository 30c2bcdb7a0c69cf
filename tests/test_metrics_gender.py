"""Gender instrument: tiny training run, save → load → identical output, errors, shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

from interp.corpus.table import load_audio, load_table
from interp.instruments import gender
from interp.instruments.common import InstrumentError, instrument_dir
from interp.instruments.data import ClipPool, roundtrip

TINY = gender.GenderConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64,
                           conv_channels=8, steps=3, batch_size=4, crop_s=0.5, warmup=1)


@pytest.fixture(scope="module")
def tiny_gender(tiny_corpus, tiny_codec, tmp_path_factory):
    rows = load_table(tiny_corpus, "train")
    rt = {r["utt_id"]: (roundtrip(tiny_codec, load_audio(tiny_corpus, r)[0]) * 32767)
          .astype(np.int16) for r in rows[:2]}
    clf = gender.new_classifier(TINY)
    history = gender.train(clf, ClipPool(tiny_corpus, rows, rt, 0.5), TINY)
    assert history["steps"] == TINY.steps and np.isfinite(history["final_loss"])
    clf.temperature = 1.7
    out = tmp_path_factory.mktemp("gender")
    clf.save(out)
    return clf, out


def test_save_load_identical(tiny_gender, tiny_corpus):
    clf, out = tiny_gender
    loaded = gender.GenderClassifier.load(out)
    assert loaded.temperature == pytest.approx(1.7) and loaded.male_index == 1
    for row in load_table(tiny_corpus, "heldout_voices")[:2]:
        audio, sr = load_audio(tiny_corpus, row)
        p, q = clf.p_male(audio, sr), loaded.p_male(audio, sr)
        assert 0.0 <= p <= 1.0 and p == pytest.approx(q, abs=1e-6)


def test_long_audio_and_resampling(tiny_gender):
    clf, _ = tiny_gender
    x = np.random.default_rng(0).normal(0, 0.1, 16000 * 45).astype(np.float32)
    assert 0.0 <= clf.p_male(x, 16000) <= 1.0  # 45 s: chunked
    assert 0.0 <= clf.p_male(x[: 22050], 22050) <= 1.0


def test_errors(tiny_gender, tmp_path):
    clf, _ = tiny_gender
    with pytest.raises(InstrumentError, match="empty"):
        clf.p_male(np.zeros(0, np.float32), 16000)
    with pytest.raises(FileNotFoundError, match="no gender weights"):
        gender.GenderClassifier.load(tmp_path)


SHIPPED = instrument_dir(gender.NAME)


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").exists(), reason="no shipped weights")
def test_shipped_weights_on_heldout_voices(tiny_corpus):
    clf = gender.GenderClassifier.load(SHIPPED)
    rows = load_table(tiny_corpus, "heldout_voices")[:6]
    right = sum((clf.p_male(*load_audio(tiny_corpus, r)) > 0.5) == (r["gender"] == "male")
                for r in rows)
    assert right >= 5, f"{right} of {len(rows)} held-out utterances right"


def test_foreign_checkpoint_labels(tmp_path):
    """A local HF checkpoint is read by its label names, whatever their order."""
    from transformers import Wav2Vec2ForSequenceClassification

    cfg = gender.model_config(TINY)
    cfg.id2label, cfg.label2id = {0: "male", 1: "female"}, {"male": 0, "female": 1}
    Wav2Vec2ForSequenceClassification(cfg).save_pretrained(tmp_path / "swapped")
    assert gender.GenderClassifier.load(tmp_path / "swapped").male_index == 0
    cfg.id2label, cfg.label2id = {0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    with pytest.raises(InstrumentError, match="which label is 'male'"):
        gender.GenderClassifier(Wav2Vec2ForSequenceClassification(cfg))
