"""The synthetic corpus: schema, splits, planted ground truth, resume and bad input."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from interp.corpus.build import build_corpus
from interp.corpus.plan import RATE_BINS, plan_corpus
from interp.corpus.render import segments
from interp.corpus.table import SCHEMA, TABLE, load_audio, load_table
from interp.corpus.voices import GENDER_F0_SPLIT_HZ, check_voice, parse_voice
from tests.conftest import tiny_config


def test_table_schema_and_counts(tiny_corpus):
    table = pq.read_table(tiny_corpus / TABLE)
    assert table.schema.equals(SCHEMA)
    assert table.num_rows == 40
    rows = table.to_pylist()
    assert len({r["utt_id"] for r in rows}) == 40
    for r in rows:
        audio, sr = load_audio(tiny_corpus, r)
        assert sr == 16000 and abs(len(audio) / sr - r["duration"]) < 1e-3
        assert r["text_plain"] == r["text"].replace("[laughter] ", "").replace(
            " [laughter]", "").replace("[breath] ", "").replace(" [breath]", "")


def test_heldout_splits_are_disjoint(tiny_corpus):
    rows = load_table(tiny_corpus)
    by = {s: [r for r in rows if r["split"] == s] for s in
          ("train", "heldout_sentences", "heldout_voices")}
    assert all(by.values()), {k: len(v) for k, v in by.items()}
    train_voices = {r["voice_id"] for r in by["train"]}
    train_sents = {r["sentence_id"] for r in by["train"]}
    assert not train_voices & {r["voice_id"] for r in by["heldout_voices"]}
    assert not train_sents & {r["sentence_id"] for r in by["heldout_voices"]}
    assert not train_sents & {r["sentence_id"] for r in by["heldout_sentences"]}
    assert {r["voice_id"] for r in by["heldout_sentences"]} <= train_voices


def test_ground_truth_matches_audio(tiny_corpus):
    rows = load_table(tiny_corpus)
    ids = {r["utt_id"]: r for r in rows}
    for r in rows:
        lo, hi = RATE_BINS[r["rate_bin"]]
        assert lo <= r["rate"] <= hi
        assert (r["instruction"] is not None) == (r["rate_bin"] != "normal")
        same_voice = [o for o in rows if o["voice_id"] == r["voice_id"] and o is not r]
        if not same_voice:
            assert r["prompt_id"] == ""
        else:
            prompt = ids[r["prompt_id"]]
            assert prompt["voice_id"] == r["voice_id"] and prompt["utt_id"] != r["utt_id"]
            if any(o["split"] == r["split"] for o in same_voice):
                assert prompt["split"] == r["split"]
        # Measured pitch agrees with the gender label.
        assert (r["f0_median"] < GENDER_F0_SPLIT_HZ) == (r["gender"] == "male"), r
        starts = [w["start"] for w in r["words"]]
        assert starts == sorted(starts) and len(r["words"]) == len(r["text_plain"].split())
        audio, sr = load_audio(tiny_corpus, r)
        assert r["text"].count("[") == len(r["tags"])
        for t in r["tags"]:
            assert 0 < t["start"] < t["end"] <= r["duration"]
            event = audio[int(t["start"] * sr): int(t["end"] * sr)]
            assert np.sqrt(np.mean(event**2)) > 0.01, "a tag span must be audible"
    assert sum(len(r["tags"]) for r in rows) >= 10


def test_resume_after_kill(tmp_path):
    cfg = tiny_config(n=20)
    first = build_corpus(cfg, tmp_path, workers=1)
    table = (tmp_path / TABLE).read_bytes()
    chunk = sorted((tmp_path / "chunks").glob("*.jsonl"))[0]
    chunk.unlink()  # as if killed before this chunk finished
    second = build_corpus(cfg, tmp_path, workers=1)
    assert second["summary"]["resumed_from"] == 0  # the only chunk was lost (20 < CHUNK)
    assert first["summary"]["utterances"] == second["summary"]["utterances"] == 20
    before = pq.read_table(io.BytesIO(table)).to_pylist()
    after = load_table(tmp_path)
    # espeak-ng's output drifts by a few ms between engine sessions: the plan must be identical,
    # the measured timings close.
    planned = ("utt_id", "split", "text", "voice_id", "rate", "instruction", "prompt_id")
    assert [[r[k] for k in planned] for r in before] == [[r[k] for k in planned] for r in after]
    assert np.allclose([r["duration"] for r in before], [r["duration"] for r in after], atol=0.05)
    third = build_corpus(cfg, tmp_path, workers=1)
    assert third["summary"]["resumed_from"] == 20


def test_render_loop_resumes_at_the_first_missing_chunk(tmp_path, monkeypatch):
    from interp.corpus import render_loop

    monkeypatch.setattr(render_loop, "CHUNK", 4)
    cfg = tiny_config(n=10)
    specs = plan_corpus(cfg, [parse_voice(v) for v in cfg.voices])
    records, before = render_loop.render_in_chunks(specs, tmp_path, 16000, 0, workers=1)
    assert before == 0 and [r["utt_id"] for r in records] == [s.utt_id for s in specs]
    chunks = sorted((tmp_path / "chunks").glob("*.jsonl"))
    assert len(chunks) == 3 and not list(tmp_path.rglob("*.tmp*"))  # atomic: no temp left
    chunks[1].unlink()  # killed inside the middle chunk
    again, before = render_loop.render_in_chunks(specs, tmp_path, 16000, 0, workers=1)
    assert before == len(specs) - 4 and [r["utt_id"] for r in again] == [s.utt_id for s in specs]


def test_other_config_in_same_folder_is_refused(tmp_path):
    build_corpus(tiny_config(n=4), tmp_path, workers=1)
    with pytest.raises(ValueError, match="another config"):
        build_corpus(tiny_config(n=5), tmp_path, workers=1)


def test_bad_voice_and_empty_text_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="bad voice id"):
        parse_voice("en-us-f2")
    with pytest.raises(ValueError, match="unknown variant"):
        parse_voice("en-us+q9@p50")
    with pytest.raises(Exception, match="unknown espeak-ng voice"):
        build_corpus(tiny_config(n=2, voices=("xx-nowhere+m1@p50",)), tmp_path, workers=1)
    with pytest.raises(ValueError, match="no words"):
        segments("[laughter] [breath]")


def test_mislabelled_voice_is_refused(monkeypatch):
    import interp.corpus.voices as voices

    monkeypatch.setattr(voices, "median_f0", lambda audio, sr: 99.0)  # renders at male pitch
    with pytest.raises(ValueError, match="labelled female"):
        check_voice(parse_voice("en-gb+f1@p50"))


def test_plan_is_deterministic_and_balanced():
    cfg = tiny_config(n=400, voices=())
    from interp.corpus.voices import default_voices

    a = plan_corpus(cfg, default_voices())
    b = plan_corpus(cfg, default_voices())
    assert [dataclasses.astuple(x) for x in a] == [dataclasses.astuple(x) for x in b]
    male = sum(s.voice.gender == "male" for s in a) / len(a)
    assert 0.4 < male < 0.6
    assert json.dumps(cfg.to_dict())


def _plan_digest(specs) -> str:
    """A digest of what a plan fixed before domains existed (utterance, split, sentence, text,
    voice, rate, instruction, prompt)."""
    import hashlib

    keys = ("utt_id", "split", "sentence_id", "text", "text_plain", "rate", "rate_bin",
            "instruction", "prompt_id")
    h = hashlib.sha256()
    for s in specs:
        h.update(json.dumps([getattr(s, k) for k in keys] + [s.voice.voice_id]).encode())
    return h.hexdigest()


def test_default_plan_is_unchanged_by_open_domain():
    """open_frac 0 (the default) plans the grammar-only corpus draw for draw: digests taken
    before the open domain was added; and its manifest config has no open-domain field."""
    from interp.corpus.plan import OPEN_FIELDS, CorpusConfig
    from interp.corpus.voices import default_voices

    cfg = CorpusConfig()
    specs = plan_corpus(cfg, default_voices(cfg.seed))
    assert _plan_digest(specs) == "417b850ad97cc4003992a1522b74bc2680f189eb6569218d60d71d69ca5d9b02"
    assert {s.domain for s in specs} == {"grammar"}
    small = CorpusConfig(n=400, n_sentences=300, seed=3)
    assert _plan_digest(plan_corpus(small, default_voices(3))) == (
        "f996eaa9f194e00076367a0da49c50eeecdf6f7dd03f3397b8982e5de8134fc5")
    assert not set(OPEN_FIELDS) & set(cfg.to_dict())
    opened = dataclasses.replace(cfg, open_frac=0.5).to_dict()
    assert set(OPEN_FIELDS) <= set(opened) and CorpusConfig(**{
        **opened, "voices": tuple(opened["voices"])}) == dataclasses.replace(cfg, open_frac=0.5)


def test_open_domain_plan():
    """Both domains in every split, concepts planted alike, held-out open sentences with words
    no training utterance has; the voice split and the grammar's held-out sentences are those
    of the grammar-only plan."""
    from interp.corpus.plan import INSTRUCTIONS, SYSTEM_PROMPT, open_generator
    from interp.corpus.voices import default_voices
    from interp.models.text_tokenizer import SYSTEM_PROMPT as MODEL_PROMPT

    assert SYSTEM_PROMPT == MODEL_PROMPT
    cfg = tiny_config(n=600, voices=(), heldout_frac=0.1, n_open_sentences=400, open_frac=0.5)
    specs = plan_corpus(cfg, default_voices(cfg.seed))
    grammar_only = plan_corpus(dataclasses.replace(cfg, open_frac=0.0), default_voices(cfg.seed))
    by = {(s.split, s.domain): [x for x in specs if (x.split, x.domain) == (s.split, s.domain)]
          for s in specs}
    assert len(by) == 6, sorted(by)  # 3 splits × 2 domains
    assert 0.4 < sum(s.domain == "open" for s in specs) / len(specs) < 0.6
    held_voices = {s.voice.voice_id for s in grammar_only if s.split == "heldout_voices"}
    assert {s.voice.voice_id for s in specs if s.split == "heldout_voices"} == held_voices
    assert not held_voices & {s.voice.voice_id for s in specs if s.split == "train"}
    train_ids = {s.sentence_id for s in specs if s.split == "train"}
    assert not train_ids & {s.sentence_id for s in specs if s.split != "train"}
    gen = open_generator(cfg)
    words = {s.utt_id: set(s.text_plain.lower().strip(".?").replace(",", "").split())
             for s in specs}
    assert not any(gen.heldout_words & words[s.utt_id] for s in specs if s.split == "train")
    assert all(gen.heldout_words & words[s.utt_id] for s in specs
               if s.split != "train" and s.domain == "open")
    spoken = {w for ins in INSTRUCTIONS.values() for i in ins for w in i.lower().split()}
    assert not gen.heldout_words & {w.strip(".") for w in spoken | set(SYSTEM_PROMPT.lower().split())}
    for domain in ("grammar", "open"):  # concepts planted alike on both domains
        mine = [s for s in specs if s.domain == domain]
        assert 0.3 < sum("[laughter]" in s.text for s in mine) / len(mine) < 0.7
        assert all((s.instruction is None) == (s.rate_bin == "normal") for s in mine)
        assert {s.rate_bin for s in mine} == set(RATE_BINS)
        assert {s.voice.gender for s in mine} == {"male", "female"}
    assert len({s.sentence_id for s in specs}) == len({s.text_plain for s in specs})


def test_open_domain_corpus_renders(tmp_path):
    """A tiny corpus with open sentences: the table's domain column, word timings for every
    word of an open sentence, the summary's domain counts; old tables read as grammar."""
    cfg = tiny_config(n=12, open_frac=0.5, n_open_sentences=40)
    manifest = build_corpus(cfg, tmp_path, workers=1)
    rows = load_table(tmp_path)
    assert {r["domain"] for r in rows} == {"grammar", "open"}
    assert manifest["summary"]["domain"] == dict(sorted(
        {d: sum(r["domain"] == d for r in rows) for d in ("grammar", "open")}.items()))
    for r in rows:
        assert len(r["words"]) == len(r["text_plain"].split()) and r["duration"] > 0.5
    assert manifest["config"]["open_frac"] == 0.5
    old = pq.read_table(tmp_path / TABLE).drop_columns(["domain"])
    pq.write_table(old, tmp_path / TABLE)
    assert "domain" not in old.schema.names
    assert {r["domain"] for r in load_table(tmp_path)} == {"grammar"}


def test_align_words_fills_words_before_the_first_timed_one():
    """espeak may give the first words no event (CI saw it once): they start at 0 and share the
    span up to the first timed word, like any untimed word between two timed ones."""
    from interp.corpus.render import align_words

    text = "the red lamp is here"  # offsets 0, 4, 8, 13, 16
    words = align_words(text, [(8, 0.6), (16, 1.2)], 2.0)
    assert [w["start"] for w in words] == [0.0, 0.3, 0.6, 0.9, 1.2]
    assert [w["end"] for w in words] == [0.3, 0.6, 0.9, 1.2, 2.0]
    assert [w["timed"] for w in words] == [False, False, True, False, True]
    assert [w["start"] for w in align_words(text, [], 2.0)] == [0.0, 0.4, 0.8, 1.2, 1.6]
