"""The 25 Hz codec: shapes, save/load identity, pitch kept, round-trip figures, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from interp.audio.codec import SpeechCodec
from interp.audio.pitch import median_f0
from interp.audio.roundtrip import RoundTripConfig, measure_roundtrip
from interp.corpus.table import load_audio, load_table
from interp.corpus.voices import GENDER_F0_SPLIT_HZ


def test_encode_decode_shapes(tiny_corpus, tiny_codec):
    row = load_table(tiny_corpus)[0]
    audio, sr = load_audio(tiny_corpus, row)
    tokens = tiny_codec.encode(audio, sr)
    assert tokens.dtype == np.int64 and len(tokens) == int(np.ceil(row["duration"] * 25))
    assert tokens.min() >= 0 and tokens.max() < tiny_codec.n_codes
    wav = tiny_codec.decode(tokens)
    assert wav.dtype == np.float32 and len(wav) == len(tokens) * 640
    assert np.isfinite(wav).all() and np.abs(wav).max() > 0.01


def test_save_load_identical(tmp_path, tiny_corpus, tiny_codec):
    tiny_codec.save(tmp_path)
    loaded = SpeechCodec.load(tmp_path)
    audio, sr = load_audio(tiny_corpus, load_table(tiny_corpus)[1])
    tokens = tiny_codec.encode(audio, sr)
    assert np.array_equal(tokens, loaded.encode(audio, sr))
    assert np.array_equal(tiny_codec.decode(tokens), loaded.decode(tokens))


def test_gender_survives_round_trip(tiny_corpus, tiny_codec):
    # A 64-code codec fit on 30 utterances quantises pitch coarsely: the gender must survive and
    # F0 stay within 20% here; the shipped 512-code codec's figure (10%) is in its roundtrip.json.
    rows = load_table(tiny_corpus, "heldout_voices")[:6]
    assert {r["gender"] for r in rows} == {"male", "female"}
    for row in rows:
        audio, sr = load_audio(tiny_corpus, row)
        f0 = median_f0(tiny_codec.decode(tiny_codec.encode(audio, sr)), sr)
        assert (f0 < GENDER_F0_SPLIT_HZ) == (row["gender"] == "male")
        assert abs(f0 / row["f0_median"] - 1) < 0.2, (row["voice_id"], row["f0_median"], f0)


def test_roundtrip_report(tmp_path, tiny_corpus, tiny_codec):
    r = measure_roundtrip(tiny_corpus, tiny_codec, RoundTripConfig(max_utts=8, examples=1),
                          tmp_path)
    assert (tmp_path / "roundtrip.json").exists() and (tmp_path / "roundtrip.html").exists()
    assert abs(r["duration_ratio"]["mean"] - 1) < 0.03
    assert r["codes"]["used"] > 1
    # the shipped recogniser reads plain espeak speech well; round-tripped speech is harder
    assert r["wer"]["original"] < 0.3 and 0 <= r["wer"]["roundtrip"] <= 2
    # the vocoder alone (the utterance's own features, no code book) reads between the two
    assert 0 <= r["wer"]["vocoder"] <= 2
    assert len(list((tmp_path / "examples").glob("*.wav"))) == 2


def test_roundtrip_wer_with_named_ears_and_per_domain(tmp_path, tiny_corpus, tiny_codec):
    """--asr DIR: that recogniser's open-vocabulary reading (it has a word list); WER per text
    domain when the measured utterances span two."""
    from interp.audio.roundtrip import _wer
    from interp.paths import REPO

    r = measure_roundtrip(tiny_corpus, tiny_codec, RoundTripConfig(
        max_utts=4, examples=0, laughter_train_utts=20, asr=str(REPO / "data/instruments/asr")))
    assert r["wer"]["recognizer"].endswith("open-vocabulary") and "by_domain" not in r["wer"]
    assert 0 <= r["wer"]["original"] < 0.5
    w = _wer(["a b", "c d", "e f"], {"original": ["a b", "c x", "e f"],
                                     "roundtrip": ["a", "c d", "x y"]}, "ears",
             ["grammar", "open", "open"])
    assert w["by_domain"]["grammar"] == {"original": 0.0, "roundtrip": 0.5, "utterances": 1}
    assert w["by_domain"]["open"]["original"] == 0.25 and w["by_domain"]["open"]["utterances"] == 2
    assert w["roundtrip"] == 3 / 6


def test_bad_input_is_a_clear_error(tmp_path, tiny_codec):
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        tiny_codec.encode(np.zeros(8000, np.float32), sr=8000)
    with pytest.raises(ValueError, match="non-empty mono"):
        tiny_codec.encode(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="token ids must lie"):
        tiny_codec.decode(np.array([0, tiny_codec.n_codes]))
    with pytest.raises(FileNotFoundError, match="fit one with"):
        SpeechCodec.load(tmp_path / "nowhere")
    tiny_codec.save(tmp_path / "codec")
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF not really a wav")
    proc = subprocess.run([sys.executable, "-m", "interp.audio", "encode", str(bad),
                           "--codec", str(tmp_path / "codec")], capture_output=True, text=True)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "cannot read" in err and "\n" not in err


@pytest.mark.parametrize("module", ["interp.corpus", "interp.audio"])
def test_cli_help(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage" in proc.stdout


def test_read_wav_errors_are_one_line(tmp_path):
    """The one reader behind `interp.audio encode`, TinyCosy's wav prompts and TinyEdit's sources."""
    import soundfile as sf

    from interp.audio.wav import read_wav

    sf.write(tmp_path / "ok.wav", np.zeros((800, 2), np.float32), 16000)
    assert read_wav(tmp_path / "ok.wav", 16000).shape == (800,)  # stereo → mono
    sf.write(tmp_path / "8k.wav", np.zeros(800, np.float32), 8000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    for name, exc, msg in (("none.wav", FileNotFoundError, "no audio file"),
                           ("bad.wav", ValueError, "cannot read"),
                           ("8k.wav", ValueError, "sox"),
                           ("empty.wav", ValueError, "empty")):
        with pytest.raises(exc, match=msg) as info:
            read_wav(tmp_path / name, 16000)
        assert "\n" not in str(info.value)


def test_stage_functions_take_configs(tmp_path, tiny_corpus, tiny_codec_dir, capsys):
    """A notebook encodes and decodes through configs, no Namespace; the CLI parses the same
    flags and positionals into the same configs (JSON tokens in, a wav out)."""
    from interp.audio.__main__ import main
    from interp.audio.run import DecodeConfig, EncodeConfig, run_decode, run_encode

    wav = tiny_corpus / load_table(tiny_corpus)[0]["path"]
    tokens = run_encode(EncodeConfig(wav=wav, codec=tiny_codec_dir, out=tmp_path / "t.npy"))
    assert tokens.dtype == np.int64 and np.array_equal(np.load(tmp_path / "t.npy"), tokens)
    d = run_decode(DecodeConfig(tokens=tmp_path / "t.npy", codec=tiny_codec_dir,
                                out=tmp_path / "a.wav"))
    assert d["tokens"] == len(tokens) and (tmp_path / "a.wav").stat().st_size > 0
    main(["encode", str(wav), "--codec", str(tiny_codec_dir)])
    (tmp_path / "t.json").write_text(capsys.readouterr().out)
    main(["decode", str(tmp_path / "t.json"), "--codec", str(tiny_codec_dir),
          "--out", str(tmp_path / "b.wav")])
    assert f"({len(tokens)} tokens" in capsys.readouterr().out
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()


def test_resynthesis_is_the_vocoder_on_true_features(tiny_corpus, tiny_codec):
    """The decoder's ceiling: same length as a decode, the speaker's F0 kept within 5% (the code
    book's round trip is allowed 20% above)."""
    row = load_table(tiny_corpus, "heldout_voices")[0]
    audio, sr = load_audio(tiny_corpus, row)
    wav = tiny_codec.resynthesize(audio)
    assert len(wav) == len(tiny_codec.encode(audio, sr)) * 640 and np.isfinite(wav).all()
    assert abs(median_f0(wav, sr) / row["f0_median"] - 1) < 0.05


def test_token_decoder_starts_as_the_code_book_and_learns(tmp_path, tiny_corpus, tiny_codec,
                                                          tiny_codec_dir):
    import torch

    from interp.audio.run import DecoderJob, run_fit_decoder
    from interp.audio.token_decoder import (
        DecoderFitConfig,
        TokenDecoder,
        _standardised_codebook,
    )

    book = _standardised_codebook(tiny_codec)
    untrained = TokenDecoder(book, channels=16, layers=2, kernel=3)
    t = torch.tensor([[0, 5, 63, 7]])
    assert torch.equal(untrained(t), book[t])  # zero-initialised output: the code book itself

    cfg = DecoderFitConfig(channels=32, layers=2, kernel=3, steps=80, batch=8, crop=24,
                           max_utts=30, eval_utts=6, lr=3e-3)
    f = run_fit_decoder(DecoderJob(corpus=tiny_corpus, codec=tiny_codec_dir, out=tmp_path), cfg)
    assert f["steps"] == 80 and f["heldout_mel_mse"]["decoder"] < f["heldout_mel_mse"]["codebook"]
    codec = SpeechCodec.load(tmp_path)  # a codec folder that decodes through its decoder
    assert codec.token_decoder is not None and SpeechCodec.load(tiny_codec_dir).token_decoder is None
    audio, sr = load_audio(tiny_corpus, load_table(tiny_corpus, "heldout_voices")[0])
    tokens = codec.encode(audio, sr)
    assert np.array_equal(tokens, tiny_codec.encode(audio, sr))  # the tokens do not change
    wav = codec.decode(tokens)
    assert len(wav) == len(tokens) * 640 and np.isfinite(wav).all() and np.abs(wav).max() > 0.01
    with pytest.raises(ValueError, match="token ids must lie"):
        codec.decode(np.array([0, 64]))
    with pytest.raises(ValueError, match="beside a copy"):
        run_fit_decoder(DecoderJob(corpus=tiny_corpus, codec=tiny_codec_dir, out=tiny_codec_dir))

    # `interp.models.evaluate --codec`: a model renders through it only when the code book is its own
    from types import SimpleNamespace

    from interp.models.evaluate import renders_alike

    assert renders_alike(SimpleNamespace(codec=tiny_codec, spec="m"), str(tmp_path)).token_decoder
    other = tmp_path.parent / "other_codec"
    SpeechCodec(tiny_codec.cfg, tiny_codec.centroids[::-1].copy(), tiny_codec.mean,
                tiny_codec.std, tiny_codec.code_f0).save(other)
    with pytest.raises(ValueError, match="code book is not the one m's"):
        renders_alike(SimpleNamespace(codec=tiny_codec, spec="m"), str(other))
    # the same centroids read through another scaling give other tokens: not the same code book
    from dataclasses import replace

    c = tiny_codec
    assert c.same_code_book(SpeechCodec(replace(c.cfg, smooth=5), c.centroids, c.mean, c.std,
                                        c.code_f0))  # smoothing only shapes the sound
    assert not c.same_code_book(SpeechCodec(c.cfg, c.centroids, c.mean, c.std * 2, c.code_f0))
    assert not c.same_code_book(SpeechCodec(replace(c.cfg, pitch_weight=2.0), c.centroids,
                                            c.mean, c.std, c.code_f0))


def test_tokenize_with_a_models_codec_keeps_the_worker_count(monkeypatch, tmp_path, tiny_corpus,
                                                             tiny_tinycosy):
    """`interp.audio tokenize --model DIR --workers 1` runs one process, as with --codec (it ran
    on every core, starving the jobs beside it)."""
    import interp.audio.tokenize_corpus as tc
    from interp.audio.run import TokenizeConfig, run_tokenize

    seen: dict = {}

    def fake(corpus, codec_dir, out, workers=None):
        seen.update(codec_dir=codec_dir, workers=workers)
        return {}

    monkeypatch.setattr(tc, "tokenize_corpus", fake)
    run_tokenize(TokenizeConfig(corpus=str(tiny_corpus), model=str(tiny_tinycosy[0]),
                                out=str(tmp_path / "tokens"), workers=1))
    assert seen["workers"] == 1 and seen["codec_dir"] is not None
