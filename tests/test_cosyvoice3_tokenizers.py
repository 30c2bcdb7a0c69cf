"""CosyVoice3's own tokenizers read from a model dir (interp.models.cosyvoice3_tokenizers), on the
replica of tests/replicas.py: wav → Whisper log-mel → `speech_tokenizer_v3.onnx` (onnxruntime)
→ 25 Hz tokens, and Qwen2's tokenizer plus CosyVoice3's 280 special tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from interp.models.cosyvoice3 import CosyVoice3Backbone
from interp.models.cosyvoice3_tokenizers import (
    COSYVOICE3_SPECIALS,
    SPEECH_TOKENIZER_FILE,
    SpeechTokenizerV3,
    mel_filters,
    whisper_log_mel,
)
from interp.models.generate import SamplingConfig
from tests.replicas import COSY_QWEN_JSON, QWEN_SPECIALS, write_cosyvoice3, write_speech_tokenizer

SR = 16000


def clip(seconds: float, sr: int = SR) -> np.ndarray:
    """A chirp with a slow tremolo: content that changes, so the tokens do too."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * (100 + 700 * t) * t)
            * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def cosy(tmp_path_factory) -> CosyVoice3Backbone:
    folder = tmp_path_factory.mktemp("cosyvoice3_tok")
    write_cosyvoice3(folder, tokenizer=True, speech_tokenizer=True)
    return CosyVoice3Backbone.load(folder)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_log_mel_is_whispers():
    import librosa

    audio = clip(1.234)
    mel = whisper_log_mel(audio)
    assert mel.shape == (1, 128, len(audio) // 160) and mel.dtype == torch.float32
    # Whisper's mel_filters.npz holds exactly this librosa call's output
    assert np.array_equal(mel_filters().numpy(),
                          librosa.filters.mel(sr=16000, n_fft=400, n_mels=128))
    # an independent numpy STFT: reflect-padded centred frames, periodic Hann, last frame dropped
    x = np.pad(audio.astype(np.float64), 200, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([x[i * 160: i * 160 + 400] * window for i in range(len(audio) // 160)])
    power = np.abs(np.fft.rfft(frames, axis=1)).T ** 2
    ref = np.log10(np.maximum(mel_filters().numpy() @ power, 1e-10))
    ref = (np.maximum(ref, ref.max() - 8.0) + 4.0) / 4.0
    assert np.abs(mel[0].numpy() - ref).max() < 1e-4


def test_speech_tokens_are_25_hz_through_the_onnx_graph(cosy, tmp_path):
    tokens = cosy.speech_tokens(clip(5.0))
    assert tokens.shape == (125,) and tokens.dtype == np.int64  # 500 mel frames → 125 tokens
    assert tokens.min() >= 0 and tokens.max() < 27 and len(set(tokens.tolist())) > 3
    assert cosy.speech_tokens(clip(1.01)).shape == (26,)  # 101 frames → ceil(101 / 4)
    assert cosy.speech_tokens(clip(2.0, 24000), 24000).shape == (50,)  # resampled to 16 kHz
    wav = tmp_path / "voice.wav"
    sf.write(wav, clip(4.0, 22050), 22050)
    assert cosy.prompt_tokens(wav).shape == (100,)  # the whole wav
    text, prompt = cosy.prompt(str(wav))
    assert text == "" and prompt.shape == (75,)  # a wav prompt is cut to its first 3 s
    ids, n_text = cosy.encode_text("the red lamp")
    out = cosy.generate(ids, torch.from_numpy(prompt), n_text, sampling=SamplingConfig(seed=1))
    assert out and all(0 <= t < 64 for t in out)


def test_full_codebook_and_a_mismatched_pair(cosy, tmp_path):
    """The real tokenizer's 3^8 = 6561 codes; a file whose codes exceed the LM's is refused."""
    write_speech_tokenizer(tmp_path / SPEECH_TOKENIZER_FILE, digits=8)
    tokens = SpeechTokenizerV3(tmp_path)(clip(3.0))
    assert tokens.shape == (75,) and tokens.dtype == np.int64
    assert tokens.min() >= 0 and tokens.max() < 6561 and tokens.max() >= 64
    mixed = CosyVoice3Backbone(cosy.model, cosy.model_dir, cosy.tokenizer)
    mixed.speech_tokenizer = SpeechTokenizerV3(tmp_path)
    with pytest.raises(ValueError) as exc:
        mixed.speech_tokens(clip(3.0))
    assert "the LM has 64 speech codes" in one_line(exc)


def test_clear_errors(cosy, tmp_path, monkeypatch):
    write_cosyvoice3(tmp_path / "bare")  # no speech_tokenizer_v3.onnx
    bare = CosyVoice3Backbone.load(tmp_path / "bare")
    with pytest.raises(FileNotFoundError) as exc:
        bare.speech_tokens(clip(1.0))
    msg = one_line(exc)
    assert f"no {SPEECH_TOKENIZER_FILE} in {tmp_path / 'bare'}" in msg and "llm.pt" in msg
    with pytest.raises(ValueError, match="at most 30 s .* 31.0 s"):
        cosy.speech_tokens(clip(31.0))
    with pytest.raises(ValueError, match="mono"):
        cosy.speech_tokens(np.zeros((2, SR), np.float32))
    with pytest.raises(ValueError, match="shorter than one 25 Hz speech token"):
        cosy.speech_tokens(np.zeros(300, np.float32))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(RuntimeError) as exc:
        SpeechTokenizerV3(cosy.model_dir)(clip(1.0))
    msg = one_line(exc)
    assert "needs onnxruntime" in msg and "pip install" in msg and "[cosyvoice3]" in msg


def test_text_tokenizer_has_cosyvoice3s_specials_in_order(cosy):
    tok = cosy.tokenizer
    qwen_dir = Path(cosy.model_dir) / "CosyVoice-BlankEN"
    assert {p.name for p in qwen_dir.iterdir()} >= {"vocab.json", "merges.txt",
                                                    "tokenizer_config.json"}
    n_bpe = len(tok) - len(COSYVOICE3_SPECIALS) - 1  # Qwen2's 3 specials, 2 of them in the list
    assert len(COSYVOICE3_SPECIALS) == len(set(COSYVOICE3_SPECIALS)) == 280
    assert tok.convert_tokens_to_ids(list(QWEN_SPECIALS)) == [n_bpe, n_bpe + 1, n_bpe + 2]
    # the 278 tokens Qwen2 lacks follow its vocabulary in CosyVoice3's order, as in the real
    # checkpoint (151_646 … 151_923 < 151_936)
    new = [t for t in COSYVOICE3_SPECIALS if t not in QWEN_SPECIALS]
    assert len(new) == 278
    assert tok.convert_tokens_to_ids(new) == list(range(n_bpe + 3, n_bpe + 3 + 278))
    assert len(tok) <= COSY_QWEN_JSON["vocab_size"]
    for tag in ("[laughter]", "<laughter>", "</laughter>", "[breath]", "[cough]", "<strong>",
                "[vocalized-noise]", "<|endofsystem|>", "<|endofprompt|>", "[AA1]", "[iǎng]",
                "[ǜ]"):
        assert len(tok.encode(tag, add_special_tokens=False)) == 1, tag
    ids = tok.encode("the [laughter] red<laughter>lamp</laughter>", add_special_tokens=False)
    assert tok.convert_tokens_to_ids("[laughter]") in ids
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert cosy.special_id("[breath]") == tok.convert_tokens_to_ids("[breath]")


def test_a_corpus_tokenized_with_the_checkpoints_tokenizer(cosy, tmp_path):
    """`python -m interp.audio tokenize --model cosyvoice3:DIR`: every utterance by the dir's
    speech_tokenizer_v3.onnx, in the shards the codec writes, named in the manifest; resumed; a
    tokens folder of another tokenizer (or whose codes do not fit) refused in one line."""
    import json

    from interp.audio.run import TokenizeConfig, run_tokenize
    from interp.audio.tokenize_corpus import load_tokens
    from interp.corpus.table import SCHEMA, write_table

    corpus = tmp_path / "corpus"
    (corpus / "wav").mkdir(parents=True)
    rows = []
    for i, seconds in enumerate((1.0, 2.5, 4.0)):
        sf.write(corpus / "wav" / f"u{i}.wav", clip(seconds), SR)
        rows.append({n: None for n in SCHEMA.names} | {
            "utt_id": f"u{i}", "split": "train", "path": f"wav/u{i}.wav", "tags": [],
            "words": []})
    write_table(rows, corpus / "utterances.parquet")
    model = f"cosyvoice3:{cosy.model_dir}"
    cfg = TokenizeConfig(corpus=corpus, out=tmp_path / "tokens", model=model)
    m = run_tokenize(cfg)
    assert m["codec"] == cosy.token_source() and m["model"] == model and m["n_codes"] == 64
    assert SPEECH_TOKENIZER_FILE in m["tokenizer"] and m["utterances"] == 3
    tokens = load_tokens(cfg.out_dir)
    for i, seconds in enumerate((1.0, 2.5, 4.0)):
        assert np.array_equal(tokens[f"u{i}"], cosy.speech_tokens(clip(seconds)))
    shard = cfg.out_dir / m["shards"][0]
    before = shard.stat().st_mtime_ns
    assert run_tokenize(cfg) == m and shard.stat().st_mtime_ns == before  # nothing redone
    cosy.check_tokens(cfg.out_dir, corpus)  # its own tokens pass

    # Tokens of another tokenizer: refused by checksum, naming the command that makes the right
    # ones; without a tokenizer file, tokens whose codes do not fit are refused.
    other = tmp_path / "codec_tokens"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({**m, "codec": "0123456789abcdef",
                                                     "tokenizer": None, "codec_dir": "data/codec",
                                                     "n_codes": 1024}))
    with pytest.raises(ValueError) as exc:
        cosy.corpus_examples(corpus, other, ["train"])
    msg = one_line(exc)
    assert f"{other} holds speech tokens of the codec in data/codec" in msg
    assert f"python -m interp.audio tokenize --model {model} --corpus {corpus}" in msg
    write_cosyvoice3(tmp_path / "bare", tokenizer=True)
    bare = CosyVoice3Backbone.load(tmp_path / "bare")
    assert bare.token_source() is None
    with pytest.raises(ValueError, match="in 1024 codes, but cosyvoice3:.* has 64"):
        bare.check_tokens(other, corpus)
    with pytest.raises(ValueError, match="no speech_tokenizer_v3.onnx"):
        bare.tokenize_corpus(corpus, tmp_path / "bare_tokens")

    # A clip the tokenizer refuses is named by its utterance.
    sf.write(corpus / "wav" / "u1.wav", clip(31.0), SR)
    with pytest.raises(ValueError, match=r"utterance u1 \(wav/u1.wav\): .*at most 30 s"):
        cosy.tokenize_corpus(corpus, tmp_path / "tokens_long")


def test_render_missing_names_the_package_and_the_checkpoint_files(cosy, tmp_path, monkeypatch):
    why = cosy.render_missing()
    assert "\n" not in why and "`cosyvoice` package" in why
    assert "github.com/FunAudioLLM/CosyVoice" in why and "PYTHONPATH" in why
    assert f"cosyvoice3.yaml, flow.pt, hift.pt of the CosyVoice3 checkpoint are missing in " \
           f"{cosy.model_dir}" in why
    import importlib.util

    for name in ("cosyvoice3.yaml", "flow.pt"):
        (tmp_path / name).write_text("")
    monkeypatch.setattr(cosy, "model_dir", tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "cosyvoice" else real(name, *a))
    why = cosy.render_missing()
    assert "package" not in why and "hift.pt of the CosyVoice3 checkpoint" in why
    (tmp_path / "hift.pt").write_text("")
    assert cosy.render_missing() == "" and cosy.can_render()
