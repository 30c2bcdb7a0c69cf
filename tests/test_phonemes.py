"""The phoneme text front end: espeak-ng phonemes in context, tags kept, saved and found again,
and continuing a BPE model with it (every weight kept but the text embedding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.models.phonemes import PhonemeTokenizer, to_phonemes, train_phoneme_tokenizer
from interp.models.registry import load_backbone
from interp.models.text_tokenizer import (
    SPECIAL_TOKENS,
    SYSTEM_PROMPT,
    length_units,
    lm_text,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from interp.models.tinycosy import TinyCosy


def test_phonemes_in_context_with_tags_and_boundaries():
    out = to_phonemes("Say this quickly.<|endofprompt|>A red lamp [laughter] here, now")
    words = out.split(" | ")
    # "a" in a sentence is the reduced vowel, not the name of the letter ('eI)
    assert "<|endofprompt|> a#" in out and "'eI" not in out.split("<|endofprompt|>")[1]
    assert words[0] == "s 'eI" and "[laughter] h 'i@3 ," in out and out.endswith("n 'aU")
    assert "k w 'I k l i ." in out
    # same text, same phonemes; different words, different phonemes
    assert to_phonemes("lamp") == to_phonemes("lamp") != to_phonemes("ramp")


def test_phoneme_tokenizer_round_trip_and_length_units(tmp_path):
    texts = ["The red lamp is here.", "Speak slowly.", "A [laughter] kettle, please!",
             SYSTEM_PROMPT]
    tok = train_phoneme_tokenizer(texts, SPECIAL_TOKENS)
    tok.save(str(tmp_path / "tokenizer.json"))
    again = load_tokenizer(tmp_path)
    assert isinstance(again, PhonemeTokenizer)
    text = lm_text("the red kettle [laughter] is here.", "", "Speak slowly.")
    ids = again.encode(text).ids
    assert ids == tok.encode(text).ids and again.token_to_id("[laughter]") in ids
    assert again.token_to_id("<|endofprompt|>") in ids
    assert again.token_to_id("[UNK]") not in ids  # every symbol seen in training
    # min/max generation lengths count words, as with the BPE's ~1 token per word
    assert length_units(again, "the red kettle [laughter] is here.") == 5
    assert len(ids) > 4 * 5
    # a BPE written over the folder is read as a BPE again (no stale phoneme marker)
    save_tokenizer(train_tokenizer(texts, 300), tmp_path)
    assert not isinstance(load_tokenizer(tmp_path), PhonemeTokenizer)
    save_tokenizer(tok, tmp_path)
    assert isinstance(load_tokenizer(tmp_path), PhonemeTokenizer)


def test_continue_a_bpe_model_with_phonemes(tmp_path, tiny_corpus, tiny_tokens, tiny_tinycosy,
                                            tiny_codec_dir):
    from interp.models.train import TrainConfig, train

    export, _ = tiny_tinycosy
    cfg = TrainConfig(corpus=str(tiny_corpus), tokens=str(tiny_tokens), out=str(tmp_path / "run"),
                      export=str(tmp_path / "export"), steps=0, batch_size=8, warmup=1,
                      eval_every=100, eval_examples=8, init_from=str(export),
                      text_frontend="phonemes")
    summary = train(cfg)
    tok = load_tokenizer(tmp_path / "export")
    assert isinstance(tok, PhonemeTokenizer)
    assert summary["model"]["text_vocab"] == tok.get_vocab_size() < 200
    old, new = TinyCosy.load(export), TinyCosy.load(tmp_path / "export")
    old_sd, new_sd = old.state_dict(), new.state_dict()
    emb = "llm.model.model.embed_tokens.weight"
    for k, v in old_sd.items():
        if k not in (emb, "llm.model.lm_head.weight"):
            assert torch.equal(v, new_sd[k]), k
    # the fresh text embedding enters the residual at the scale the layers were trained on
    assert new_sd[emb].norm(dim=-1).mean().item() == pytest.approx(
        old_sd[emb].norm(dim=-1).mean().item(), rel=1e-3)
    with pytest.raises(ValueError, match="--text-frontend 'chars'"):
        train(TrainConfig(**{**cfg.__dict__, "text_frontend": "chars",
                             "out": str(tmp_path / "run2")}))
    # continuing the phoneme export keeps its front end without the flag
    again = train(TrainConfig(**{**cfg.__dict__, "text_frontend": "", "init_from":
                                 str(tmp_path / "export"), "out": str(tmp_path / "run3"),
                                 "export": str(tmp_path / "export3")}))
    assert again["model"]["text_vocab"] == tok.get_vocab_size()
    assert (tmp_path / "export3" / "text_frontend.json").exists()
    # and the tts API speaks through it
    engine = load_backbone(str(tmp_path / "export"), "cpu", codec=str(tiny_codec_dir))
    audio = engine.tts("the red lamp is here.", next(iter(engine.prompts)), seed=0)
    assert audio.dtype == np.float32 and len(audio) > 0


def test_phoneme_tokens_know_their_words(tiny_corpus, tiny_tokens):
    """The attention guide's word labels work with phonemes: each labelled frame points at the
    phoneme tokens of the word being spoken."""
    from interp.audio.tokenize_corpus import load_tokens
    from interp.corpus.table import load_table
    from interp.models.data import make_examples

    rows = load_table(tiny_corpus)[:6]
    tok = train_phoneme_tokenizer([r["text"] for r in rows] + [SYSTEM_PROMPT], SPECIAL_TOKENS)
    text = "the red lamp [laughter] is here."
    offsets = tok.char_offsets(text)
    assert len(offsets) == len(tok.encode(text).ids)
    assert {text[a:b] for a, b in offsets} >= {"red", "lamp", "[laughter]", "."}
    ex = make_examples(rows, load_tokens(tiny_tokens), tok)
    assert ex and all(e.spoken_span is not None for e in ex)
    e, r = ex[0], next(r for r in rows if r["utt_id"] == ex[0].utt_id)
    labelled = e.spoken_span[e.spoken_span[:, 0] >= 0]
    assert len(labelled) > 0
    inv = {i: s for s, i in tok.inner.get_vocab().items()}
    for lo, hi in labelled.tolist():
        symbols = [inv[i] for i in e.text_ids[lo:hi + 1].tolist()]
        assert symbols and "|" not in symbols  # one word's phonemes, no boundary inside
    assert len({tuple(s) for s in labelled.tolist()}) >= len(r["words"]) - 1  # word by word
