"""Open-domain sentences (seeded, clean), rendered as a corpus folder, measured by every decode."""

from __future__ import annotations

import json

import pytest

from interp.corpus.table import load_table
from interp.instruments.open_speech import OpenSpeechConfig, build_open_speech
from interp.instruments.open_text import (
    clean,
    conversational,
    is_conversational,
    open_sentences,
)

# A tiny trigram chain in the essential-generators format: "w1 w2" -> (next words, weights).
CHAIN = {
    "The river": (["flows"], [1.0]), "river flows": (["past", "into"], [0.5, 0.5]),
    "flows past": (["the"], [1.0]), "past the": (["old"], [1.0]), "the old": (["mill."], [1.0]),
    "flows into": (["Lake"], [1.0]), "into Lake": (["Geneva."], [1.0]),
    "Prices rose": (["by"], [1.0]), "rose by": (["5%."], [1.0]),
    "Anna wrote": (["letters"], [1.0]), "wrote letters": (["to"], [1.0]),
    "letters to": (["Paris."], [1.0]),
}


def test_clean_rejects_what_espeak_would_read_differently():
    assert clean(["The", "old", "mill."]) == "The old mill."
    assert clean(["It", "was", "1990."]) is None  # digits
    assert clean(["The", "USA", "won."]) is None  # acronym: spelt out by espeak
    assert clean(["Mr", "Smith", "left."]) is None  # abbreviation: "mister"
    assert clean(["no", "ending"]) is None


def test_open_sentences_are_seeded_distinct_and_clean():
    a = open_sentences(5, seed=3, chain=CHAIN, min_words=3, conversational_share=0.5)
    assert a == open_sentences(5, seed=3, chain=CHAIN, min_words=3, conversational_share=0.5)
    assert len(set(a)) == 5 and not any("5%" in s for s in a)
    assert a != open_sentences(5, seed=4, chain=CHAIN, min_words=3, conversational_share=0.5)
    b = open_sentences(2, seed=3, chain=CHAIN, min_words=3, conversational_share=0.0,
                       exclude=frozenset({"The river flows past the old mill."}))
    assert "The river flows past the old mill." not in b
    with pytest.raises(ValueError, match="found only"):
        open_sentences(50, seed=0, chain=CHAIN, min_words=3, conversational_share=0.0)


def test_conversational_sentences_fill_every_slot():
    import random

    rng = random.Random(0)
    for _ in range(30):
        s = conversational(rng)
        assert "{" not in s and s[-1] in ".?" and s[0].isupper() and is_conversational(s)
    assert not is_conversational("The river flows past the old mill.")
    assert not is_conversational("How are you today, said the river?")


@pytest.fixture(scope="module")
def open_speech(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("open")
    cfg = OpenSpeechConfig(corpus=str(tiny_corpus), out=str(out), n_train=3, n_dev=1, n_test=2,
                           conversational_share=0.5)
    return cfg, build_open_speech(cfg, chain=CHAIN)


def test_open_speech_is_a_corpus_folder_with_held_out_voices(open_speech, tiny_corpus):
    cfg, manifest = open_speech
    rows = load_table(cfg.out)
    assert manifest["counts"] == {"train": 3, "dev": 1, "heldout_voices": 2}
    held = {r["voice_id"] for r in load_table(tiny_corpus, "heldout_voices")}
    train = {r["voice_id"] for r in load_table(tiny_corpus, "train")}
    assert all(r["voice_id"] in held for r in rows if r["split"] == "heldout_voices")
    assert all(r["voice_id"] in train for r in rows if r["split"] != "heldout_voices")
    assert len({r["text_plain"] for r in rows}) == 6 and all(r["duration"] > 0.3 for r in rows)
    # the same config again is a no-op that returns the same manifest
    assert build_open_speech(cfg, chain={}) == json.loads(
        (tmp_path_of(cfg) / "manifest.json").read_text())


def tmp_path_of(cfg: OpenSpeechConfig):
    from pathlib import Path

    return Path(cfg.out)


def test_evaluate_reports_every_decode_and_writes_the_card(open_speech, tiny_corpus,
                                                           tiny_codec_dir, tmp_path):
    from interp.instruments import asr
    from interp.instruments.ctc_open import WordList
    from interp.instruments.evaluate import SECTION, AsrEvalConfig, format_table, run_eval
    from interp.instruments.text import Lexicon
    from tests.test_metrics_asr import TINY

    cfg, _ = open_speech
    rec = asr.new_recognizer(TINY, tmp_path)
    rec.lexicon = Lexicon(["the", "river"])
    rec.wordlist = WordList.from_counts({"the": 10, "river": 2, "hello": 1})
    rec.save(tmp_path)
    section = run_eval(AsrEvalConfig(asr=str(tmp_path), corpus=str(tiny_corpus),
                                     open_speech=cfg.out, codec=str(tiny_codec_dir), n_grammar=2,
                                     n_grammar_roundtrip=0, n_open_roundtrip=1, write_card=True))
    assert section["open_domain"]["original"]["n"] == 2
    assert section["open_domain"]["roundtrip"]["n"] == 1
    row = section["wer"]["open_domain original (n 2)"]
    assert set(row) == {"greedy", "grammar_lexicon", "wordlist", "open"}
    assert all(v is not None and v >= 0 for v in row.values())
    kinds = [section["open_domain"].get(f"original_{k}", {}).get("n", 0)
             for k in ("conversational", "encyclopedic")]
    assert sum(kinds) == 2
    card = json.loads((tmp_path / "card.json").read_text())
    assert card[SECTION]["wer"] == section["wer"] and "open" in format_table(section)


def test_tune_open_ranks_grid_points_best_first(open_speech, tiny_corpus):
    from interp.corpus.table import load_audio
    from interp.instruments import asr
    from interp.instruments.ctc_open import WordList
    from interp.instruments.evaluate import tune_open
    from tests.test_metrics_asr import TINY

    cfg, _ = open_speech
    rec = asr.new_recognizer(TINY, tiny_corpus.parent / "tune_asr")
    clips = [(load_audio(cfg.out, r)[0], r) for r in load_table(cfg.out, "dev")]
    with pytest.raises(ValueError, match="no word list"):
        tune_open(rec, clips)
    rec.wordlist = WordList.from_counts({"the": 10, "river": 2})
    ranked = tune_open(rec, clips, grid={"lm_weight": (0.0, 0.5), "word_bonus": (1.0,)})
    assert len(ranked) == 2 and ranked[0][0] <= ranked[1][0]
    assert {c["lm_weight"] for _, c in ranked} == {0.0, 0.5}
    assert rec.open_cfg == asr.OpenBeamConfig()  # the grid leaves the recogniser as it was


def test_tuned_open_decode_is_kept_with_the_recogniser(tmp_path, tiny_corpus):
    """--tune --keep-best stores the best weights in the folder; every later load decodes with
    them (a grid point's WER is the open reading's with those weights)."""
    from interp.corpus.table import load_audio
    from interp.instruments import asr
    from interp.instruments.ctc_open import WordList
    from interp.instruments.evaluate import keep_best, tune_open
    from interp.instruments.text import corpus_error_rates, normalize_text
    from tests.test_metrics_asr import TINY

    rec = asr.new_recognizer(TINY, tmp_path / "asr")
    rec.wordlist = WordList.from_counts({"the": 10, "river": 2, "lamp": 3})
    rec.save(tmp_path / "asr")
    assert not (tmp_path / "asr" / asr.OPEN_DECODE).exists()  # defaults: nothing to keep
    rows = load_table(tiny_corpus, "heldout_voices")[:2]
    clips = [(load_audio(tiny_corpus, r)[0], r) for r in rows]
    ranked = tune_open(rec, clips, grid={"lm_weight": (0.3,), "word_bonus": (2.0,)})
    keep_best(str(tmp_path / "asr"), ranked[0][1])
    loaded = asr.Recognizer.load(tmp_path / "asr")
    assert (loaded.open_cfg.lm_weight, loaded.open_cfg.word_bonus) == (0.3, 2.0)
    hyps = [loaded.readings(a)["open"] for a, _ in clips]
    refs = [normalize_text(r["text_plain"]) for _, r in clips]
    assert ranked[0][0] == corpus_error_rates(refs, hyps)["wer"]
    with pytest.raises(ValueError, match="--asr"):
        keep_best("", ranked[0][1])


def test_run_asr_mixes_in_an_extra_corpus_and_ships_a_word_list(open_speech, tiny_corpus,
                                                                tiny_codec_dir, tmp_path):
    import dataclasses

    from interp.instruments import asr
    from interp.instruments.ctc_open import WORDLIST, WordList
    from interp.instruments.evaluate import SECTION
    from interp.instruments.train import TrainJob, run_asr
    from tests.test_metrics_asr import TINY

    cfg, _ = open_speech
    job = TrainJob(corpus=str(tiny_corpus), codec=str(tiny_codec_dir), out=str(tmp_path / "asr"),
                   roundtrip_cache=str(tmp_path / "rt"), extra_corpus=cfg.out)
    acfg = dataclasses.replace(TINY, roundtrip_frac=0.0, n_roundtrip=0, n_eval=2,
                               n_eval_roundtrip=0, n_extra_roundtrip=0, wordlist_size=200)
    card = run_asr(job, acfg)
    assert card["training_data"]["extra_utterances"] == 3
    assert card["training_data"]["extra_corpus"] == cfg.out
    assert card[SECTION]["open_domain"]["original"]["n"] == 2
    assert len(WordList.load(tmp_path / "asr" / WORDLIST)) == 200
    assert asr.Recognizer.load(tmp_path / "asr").wordlist is not None


def test_grammar_lexicon_leaves_open_domain_words_out():
    from interp.instruments.train import grammar_lexicon

    rows = [{"text_plain": "The red lamp.", "domain": "grammar"},
            {"text_plain": "Hello, how are you?", "domain": "open"},
            {"text_plain": "A blue door.", "domain": None}]
    assert set(grammar_lexicon(rows, ["river"]).words) == {"the", "red", "lamp", "a", "blue",
                                                           "door", "river"}
    # a corpus with no grammar rows (imported speech) keeps all its words
    assert "hello" in grammar_lexicon(rows[1:2]).words
