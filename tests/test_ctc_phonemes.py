"""Phoneme units for the recogniser: the pronunciation table (citation and in-context forms,
homophones), decoding hand-made phoneme posteriors back into words through both decoders, and a
tiny phoneme recogniser trained, saved and loaded by `train asr --units phonemes`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from interp.instruments.asr import Recognizer, new_recognizer
from interp.instruments.ctc_lexicon import LexiconDecoder
from interp.instruments.ctc_open import OpenDecoder, WordList
from interp.instruments.ctc_phonemes import Pronunciations, canonical, word_phonemes
from interp.instruments.text import Lexicon

WORDS = WordList.from_counts({"the": 1000, "to": 900, "two": 300, "too": 200, "cat": 50,
                              "sat": 40, "hello": 30, "weather": 20, "a": 800})


@pytest.fixture(scope="module")
def table() -> Pronunciations:
    return Pronunciations.build(WORDS, ["The cat sat on a mat.", "Hello, the weather!"],
                                quiet=True)


def frames(table: Pronunciations, vocab: dict[str, int], words: list[str]) -> np.ndarray:
    """(T, V) log-probs that spell `words` (their first spelling), a blank between units and a
    delimiter between words; 0.9 on the frame's token."""
    seq: list[int] = []
    for i, w in enumerate(words):
        if i:
            seq.append(vocab["|"])
        for ch in table.spellings[w][0]:
            seq += [vocab[ch], vocab["<pad>"]]
    out = np.full((len(seq), len(vocab)), 0.1 / (len(vocab) - 1))
    out[np.arange(len(seq)), seq] = 0.9
    return np.log(out)


def test_units_drop_stress_variants_and_pauses():
    assert canonical("'E") == "E" and canonical(",aU") == "aU" and canonical("@2") == "@"
    assert canonical("_:") is None and canonical("") is None
    assert [w for w, _ in word_phonemes("Hello, how are you?")] == ["hello", "how", "are", "you"]


def test_table_has_citation_and_in_context_forms_and_homophones(table):
    assert {"the", "cat", "sat", "on", "mat", "hello", "weather", "a"} <= set(table.spellings)
    # "to", "two", "too" are one spelling; the commonest word wins it
    [spelling] = set(table.spellings["two"])
    assert table.word(spelling) == "to"
    assert table.word(spelling, among=frozenset({"two", "cat"})) == "two"
    # "a" said alone is the letter's name; in "sat on a mat" it is a weak form: both are "a"
    assert len(table.spellings["a"]) >= 2
    assert all(table.word(s) == "a" for s in table.spellings["a"])
    # a spelling nobody has comes out as one unlisted word
    odd = table.spell(["k", "k", "k"])
    assert table.words(odd) == "kkk" and "kkk" not in WORDS.logp


def test_label_is_the_sentence_in_units_word_by_word(table):
    label = table.label("The cat sat.")
    assert label.split() == [table.spell(u) for _, u in word_phonemes("the cat sat")]
    assert all(ord(c) >= 0xE000 for c in label.replace(" ", ""))


def test_both_decoders_read_phoneme_frames_back_into_words(table):
    vocab = table.vocab()
    lp = frames(table, vocab, ["hello", "the", "weather"])
    open_dec = OpenDecoder(table.wordlist(), vocab)
    assert table.words(open_dec.decode(lp)) == "hello the weather"
    lex = LexiconDecoder([s for w in ("hello", "the", "weather", "cat")
                          for s in table.spellings[w]], vocab)
    assert table.words(lex.decode(lp)) == "hello the weather"


def test_save_load_round_trip(table, tmp_path):
    table.save(tmp_path)
    back = Pronunciations.load(tmp_path)
    assert back.units == table.units and back.table.keys() == table.table.keys()
    assert all(back.table[s] == pytest.approx(ws, abs=1e-4) for s, ws in table.table.items())
    assert Pronunciations.load(tmp_path / "none") is None  # a letter recogniser has no table


def test_train_asr_with_phoneme_units(tiny_corpus, tiny_codec_dir, tmp_path):
    from interp.instruments.train import TrainJob, run_asr
    from tests.test_metrics_asr import TINY

    job = TrainJob(corpus=str(tiny_corpus), codec=str(tiny_codec_dir), out=str(tmp_path / "asr"),
                   roundtrip_cache=str(tmp_path / "rt"))
    cfg = dataclasses.replace(TINY, roundtrip_frac=0.0, n_roundtrip=0, n_eval=2,
                              n_eval_roundtrip=0, wordlist_size=300, units="phonemes")
    card = run_asr(job, cfg)
    assert card["units"].startswith("phonemes") and "t" in card["vocabulary"]
    rec = Recognizer.load(tmp_path / "asr")
    assert rec.phonemes is not None and rec.lexicon is not None and rec.wordlist is not None
    assert rec.model.config.vocab_size == len(rec.phonemes.units) + 3
    wav = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    readings = rec.readings(wav, wordlist=True)
    assert set(readings) == {"greedy", "lexicon", "open", "wordlist"}
    assert all(isinstance(v, str) for v in readings.values())
    # a half-precision copy (what ships in data/instruments/asr_open) loads in fp32, reads alike
    rec.save(tmp_path / "half", half=True)
    import safetensors.torch

    stored = safetensors.torch.load_file(tmp_path / "half" / "model.safetensors")
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    half = Recognizer.load(tmp_path / "half")
    assert next(half.model.parameters()).dtype == torch.float32
    assert half.readings(wav, wordlist=True).keys() == readings.keys()
    lp, lp_half = rec.log_probs(wav)[0], half.log_probs(wav)[0]
    assert np.abs(lp - lp_half).max() < 0.05
    # every word the decodes may give is a word (no private-use characters leak out)
    assert all(ord(c) < 0xE000 for v in readings.values() for c in v)
    # tuning the open decode reads words through the table, as the recogniser's open reading
    from interp.corpus.table import load_audio, load_table
    from interp.instruments.evaluate import tune_open
    from interp.instruments.text import corpus_error_rates, normalize_text

    clips = [(load_audio(tiny_corpus, r)[0], r) for r in load_table(tiny_corpus, "heldout_voices")[:2]]
    d = rec.open_cfg
    ranked = tune_open(rec, clips, grid={"lm_weight": (d.lm_weight,), "word_bonus": (d.word_bonus,)})
    assert ranked[0][0] == corpus_error_rates([normalize_text(r["text_plain"]) for _, r in clips],
                                              [rec.readings(a)["open"] for a, _ in clips])["wer"]
    # the grammar lexicon decode only outputs lexicon words
    assert set(readings["lexicon"].split()) <= set(rec.lexicon.words) | set(
        Lexicon(rec.lexicon.words).correct(readings["greedy"]).split())
    # a letter recogniser continued with phoneme units keeps what it hears, gets a new head
    letters = tmp_path / "letters"
    new_recognizer(TINY, letters).save(letters)
    old = Recognizer.load(letters).model.state_dict()
    card = run_asr(dataclasses.replace(job, out=str(tmp_path / "cont")),
                   dataclasses.replace(cfg, init_from=str(letters), steps=0))
    cont = Recognizer.load(tmp_path / "cont")
    assert cont.phonemes is not None and "continued_from" in card
    new = cont.model.state_dict()
    assert new["lm_head.weight"].shape[0] == len(cont.phonemes.units) + 3 != old[
        "lm_head.weight"].shape[0]
    assert all(torch.equal(new[k], v) for k, v in old.items() if not k.startswith("lm_head."))
