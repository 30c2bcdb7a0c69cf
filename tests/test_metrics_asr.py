"""Content instrument: tiny CTC training run, save → load → identical transcript, shipped WER."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.corpus.table import load_audio, load_table
from interp.instruments import asr
from interp.instruments.common import InstrumentError, instrument_dir
from interp.instruments.data import ClipPool
from interp.instruments.text import ALPHABET, Lexicon, corpus_error_rates, normalize_text

TINY = asr.AsrConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64,
                     conv_channels=(8, 8), steps=2, batch_seconds=6.0, warmup=1)


@pytest.fixture(scope="module")
def tiny_asr(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("asr")
    rec = asr.new_recognizer(TINY, out)
    rows = load_table(tiny_corpus, "train")
    rec.lexicon = Lexicon([w for r in rows for w in normalize_text(r["text_plain"]).split()])
    history = asr.train(rec, ClipPool(tiny_corpus, rows, {}, 0.0), TINY)
    assert history["steps"] == TINY.steps and np.isfinite(history["final_loss"])
    rec.save(out)
    return rec, out


def test_save_load_identical_transcript(tiny_asr, tiny_corpus):
    rec, out = tiny_asr
    loaded = asr.Recognizer.load(out)
    audio, sr = load_audio(tiny_corpus, load_table(tiny_corpus, "heldout_voices")[0])
    text = rec.transcribe(audio, sr)
    assert isinstance(text, str) and set(text) <= set(ALPHABET + " ")
    assert loaded.transcribe(audio, sr) == text
    assert loaded.lexicon is not None and loaded.lexicon.words == rec.lexicon.words
    greedy, constrained = loaded.transcribe_both(audio, sr)
    assert greedy == text and set(constrained.split()) <= set(rec.lexicon.words) | set(text.split())
    # the lexicon set after construction (as training does) decodes the same way
    assert rec.transcribe_both(audio, sr) == (greedy, constrained)
    x = torch.from_numpy(rec.frontend(audio))[None]  # flattened log-mel frames
    with torch.no_grad():
        logits, logits2 = rec.model(x).logits, loaded.model(x).logits
    assert torch.allclose(logits, logits2, atol=1e-5)
    assert logits.shape[-1] == len(asr.VOCAB)
    assert abs(logits.shape[1] - len(audio) / 320) <= 2  # 50 Hz frames


def test_waveform_checkpoint_loads_as_waveform_model(tiny_corpus, tmp_path):
    """A plain HF CTC checkpoint (no frontend.json) reads the raw 16 kHz waveform."""
    cfg = asr.AsrConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64,
                        frontend="waveform", conv_channels=(8,) * 7)
    rec = asr.new_recognizer(cfg, tmp_path)
    rec.save(tmp_path)
    assert not (tmp_path / asr.FRONTEND).exists()
    loaded = asr.Recognizer.load(tmp_path)
    assert loaded.frontend.kind == "waveform"
    audio, sr = load_audio(tiny_corpus, load_table(tiny_corpus, "heldout_voices")[0])
    assert loaded.transcribe(audio, sr) == rec.transcribe(audio, sr)
    with pytest.raises(ValueError, match="exactly 2"):
        asr.model_config(asr.AsrConfig(conv_channels=(8,) * 7))


def test_evaluate_and_errors(tiny_asr, tiny_corpus, tmp_path):
    rec, _ = tiny_asr
    clips = [(load_audio(tiny_corpus, r)[0], r) for r in load_table(tiny_corpus, "heldout_voices")]
    f = asr.evaluate(rec, clips[:2])
    assert f["n"] == 2 and f["wer"] >= 0 and len(f["examples"]) == 2
    with pytest.raises(InstrumentError, match="empty"):
        rec.transcribe(np.zeros(0, np.float32), 16000)
    with pytest.raises(FileNotFoundError, match="no asr weights"):
        asr.Recognizer.load(tmp_path)


def test_eval_only_rewrites_the_card_figures(tiny_asr, tiny_corpus, tmp_path):
    """`--eval-only` re-measures a trained recogniser in place and keeps its training record."""
    import json
    import shutil

    from interp.instruments.train import main

    _, folder = tiny_asr
    out = tmp_path / "asr"
    shutil.copytree(folder, out)
    run = {"steps": 2, "wall_s": 1.0, "final_loss": 3.0}
    (out / "card.json").write_text(json.dumps({"instrument": "asr", "parameters": 1,
                                               "training_run": run}))
    main(["asr", "--eval-only", "--corpus", str(tiny_corpus), "--out", str(out), "--n-eval", "3",
          "--n-eval-roundtrip", "0", "--roundtrip-cache", str(tmp_path / "rt")])
    card = json.loads((out / "card.json").read_text())
    assert card["training_run"] == run and "reevaluated" in card
    fig = card["heldout_voices"]["original"]
    assert fig["n"] == 3 and fig["lexicon_corrected"]["shuffled_reference_wer"] >= 0


SHIPPED = instrument_dir(asr.NAME)


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").exists(), reason="no shipped weights")
def test_shipped_weights_on_heldout_voices(tiny_corpus):
    rec = asr.Recognizer.load(SHIPPED)
    rows = load_table(tiny_corpus, "heldout_voices")[:6]
    hyps = [rec.transcribe(*load_audio(tiny_corpus, r)) for r in rows]
    rates = corpus_error_rates([r["text_plain"] for r in rows], hyps)
    assert rates["wer"] <= 0.25, rates
    # lexicon decoding: near-perfect on the grammar, yet far off against the wrong sentence
    f = asr.evaluate(rec, [(load_audio(tiny_corpus, r)[0], r) for r in rows])
    assert f["lexicon_corrected"]["wer"] <= 0.1, f
    assert f["lexicon_corrected"]["shuffled_reference_wer"] >= 0.5, f


def test_run_asr_takes_configs(tiny_corpus, tiny_codec_dir, tmp_path):
    """A notebook trains an instrument from two configs, no Namespace; the CLI's flags parse
    into the same configs, lists of numbers as numbers."""
    import dataclasses
    import json

    from interp.cli import config_from_args
    from interp.instruments.train import TrainJob, build_parser, run_asr

    job = TrainJob(corpus=str(tiny_corpus), codec=str(tiny_codec_dir), out=str(tmp_path / "asr"),
                   roundtrip_cache=str(tmp_path / "rt"))
    cfg = dataclasses.replace(TINY, roundtrip_frac=0.0, n_roundtrip=0, n_eval=2,
                              n_eval_roundtrip=0)
    card = run_asr(job, cfg)
    assert json.loads((tmp_path / "asr" / "card.json").read_text()) == json.loads(json.dumps(card))
    assert card["config"]["conv_channels"] == (8, 8) and card["corpus"] == str(tiny_corpus)
    assert card["heldout_voices"]["original"]["n"] == 2
    assert asr.Recognizer.load(tmp_path / "asr").lexicon is not None
    args = build_parser().parse_args(["asr", "--conv-channels", "8", "8", "--threads", "2"])
    assert config_from_args(asr.AsrConfig, args).conv_channels == (8, 8)
    assert config_from_args(TrainJob, args) == TrainJob(threads=2)
