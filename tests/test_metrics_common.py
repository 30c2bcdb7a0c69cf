"""Shared pieces of the listening instruments: audio intake, text scores, calibration, spans,
the round-trip cache."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from interp.corpus.table import load_audio, load_table
from interp.instruments import data as mdata
from interp.instruments.calibration import ece, fit_temperature
from interp.instruments.common import InstrumentError, audio_files, prepare_audio, read_audio
from interp.instruments.laughter import frame_labels, frames_to_spans, match_spans
from interp.instruments.text import Lexicon, cer, corpus_error_rates, normalize_text, wer
from interp.loop import LoopConfig, lr_at


def test_prepare_audio_resamples_and_mixes_down():
    x = np.random.default_rng(0).normal(0, 0.1, (8000, 2)).astype(np.float32)
    y, notes = prepare_audio(x, 8000)
    assert y.ndim == 1 and abs(len(y) - 16000) <= 1
    assert any("resampled from 8000 Hz" in n for n in notes) and "mixed down to mono" in notes


@pytest.mark.parametrize("bad, msg", [(np.zeros(0), "empty"), (np.full(1600, np.nan), "NaN"),
                                      (np.zeros(10), "too short"), (np.zeros((2, 2, 2)), "mono")])
def test_prepare_audio_rejects_bad_input(bad, msg):
    with pytest.raises(InstrumentError, match=msg):
        prepare_audio(bad, 16000)


def test_read_audio_errors(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(InstrumentError, match="cannot read"):
        read_audio(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(InstrumentError, match="empty"):
        read_audio(empty)
    with pytest.raises(FileNotFoundError):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        audio_files(tmp_path / "empty_dir")


def test_text_scores():
    assert normalize_text("Hello, World! It's  me.") == "hello world it's me"
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert wer("", "") == 0.0 and wer("", "x") == 1.0
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    r = corpus_error_rates(["a b", "c d e"], ["a b", "c x e"])
    assert r["wer"] == pytest.approx(1 / 5) and r["exact"] == 0.5


def test_lexicon_snaps_near_misses_only():
    lex = Lexicon(["tiny", "shovel", "inside", "the", "station"])
    assert lex.correct("The tiny shovle") == "the tiny shovel"
    assert lex.correct("tinyshovl inside") == "tiny shovel inside"
    assert lex.correct("xqzvwk") == "xqzvwk"  # far from every known word: kept


def test_calibration_helpers():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    z = (2 * y - 1) * 1.0 + rng.normal(0, 1, 2000)  # true log-odds scale 2 → sharp
    assert ece(1 / (1 + np.exp(-2 * z)), y) < ece(1 / (1 + np.exp(-8 * z)), y)
    assert 1.0 <= fit_temperature(8 * z, y) <= 20.0
    assert fit_temperature(8 * z, y) > 2.0  # over-confident logits get softened
    cfg = LoopConfig(steps=100, lr=1.0, warmup=10, max_minutes=1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(99, cfg) < 0.1


def test_spans_and_labels():
    p = np.zeros(50)
    p[10:20] = 0.9
    p[24:30] = 0.9  # gap of 4 frames = 0.16 s < 0.2 s: merged
    p[40] = 0.9  # a 40 ms blip: dropped
    assert frames_to_spans(p, 0.5) == [(0.4, 1.2)]
    assert match_spans([(0.4, 1.2)], [(0.5, 1.2)]) == 1
    assert match_spans([(0.0, 0.2)], [(0.5, 1.2)]) == 0
    y = frame_labels([{"tag": "laughter", "start": 0.4, "end": 0.8},
                      {"tag": "breath", "start": 1.0, "end": 1.4}], 50)
    assert y.sum() == 10 and y[10] == 1 and y[30] == 0


def test_augment_keeps_shape_and_scales_speed():
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(16000) / 10).astype(np.float32)
    y, speed = mdata.augment(x, rng, mdata.Augment(speed=0.1))
    assert 0.9 <= speed <= 1.1 and abs(len(y) - len(x) / speed) <= 1 and y.dtype == np.float32


def test_roundtrip_cache_builds_once(tiny_corpus, tiny_codec, tmp_path, monkeypatch):
    monkeypatch.setattr(mdata, "SHARD", 2)
    cache = mdata.RoundTripCache(tiny_corpus, tiny_codec, tmp_path / "rt")
    rows, rt = cache.get("heldout_voices", 3)
    assert len(rows) == 3 and all(r["utt_id"] in rt for r in rows)
    row = rows[0]
    assert len(rt[row["utt_id"]]) == len(load_audio(tiny_corpus, row)[0])  # times stay aligned
    shards = sorted(p.name for p in (tmp_path / "rt").glob("*.npz"))
    assert shards == ["heldout_voices_00000.npz", "heldout_voices_00001.npz"]
    rows2, _ = cache.get("heldout_voices", 3)  # cached: same rows, nothing rebuilt
    assert [r["utt_id"] for r in rows2] == [r["utt_id"] for r in rows]
    assert {r["utt_id"] for r in rows} <= {r["utt_id"] for r in load_table(tiny_corpus)}


def test_command_line_names_the_instruments_module(monkeypatch):
    import sys

    from interp.instruments.common import command_line

    for script, module in (("/x/interp/instruments/train.py", "interp.instruments.train"),
                           ("/x/interp/instruments/evaluate.py", "interp.instruments.evaluate"),
                           ("/x/interp/instruments/__main__.py", "interp.instruments")):
        monkeypatch.setattr(sys, "argv", [script, "--n", "3", "a b"])
        assert command_line() == f"python -m {module} --n 3 'a b'"
