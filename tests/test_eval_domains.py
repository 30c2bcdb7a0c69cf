"""`interp.models.evaluate --domain grammar|open|both`: which held-out sentences are spoken, and
the figures by domain (with the greedy decode beside the lexicon one)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from interp.corpus.build import build_corpus
from interp.corpus.plan import open_generator
from interp.corpus.table import load_table
from interp.models.eval_plan import plan_sentences
from tests.conftest import tiny_config

# The tiny corpus's voices, sentences and seed with open sentences added: the voice split is the
# grammar-only corpus's, so the tiny model's held-out prompts are this corpus's held-out voices.
OPEN = tiny_config(n=32, open_frac=0.5, n_open_sentences=40, heldout_frac=0.25)


@pytest.fixture(scope="module")
def open_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("open_corpus")
    build_corpus(OPEN, out, workers=1)
    return out


def _engine(corpus) -> SimpleNamespace:
    """The part of a Backbone a plan reads: a prompt bank, one voice per corpus voice."""
    rows = load_table(corpus)
    return SimpleNamespace(voices={r["voice_id"]: {"split": r["split"], "gender": r["gender"]}
                                   for r in rows if r["split"] != "heldout_sentences"})


def test_plans_by_domain(open_corpus, tiny_corpus):
    engine = _engine(open_corpus)
    held = open_generator(OPEN).heldout_words
    grammar = plan_sentences(open_corpus, engine, 3, 0, domain="grammar")
    opened = plan_sentences(open_corpus, engine, 3, 0, domain="open")
    both = plan_sentences(open_corpus, engine, 3, 0, domain="both")
    assert {p[3]["domain"] for p in grammar} == {"grammar"}
    assert {p[3]["domain"] for p in opened} == {"open"} and len(opened) >= 2
    assert all(held & set(p[0].lower().strip(".?").replace(",", "").split()) for p in opened)
    assert both == grammar + opened  # n of each, each as its own plan
    assert all(p[3]["split"] == "heldout_voices" and p[0] == p[3]["text_plain"] for p in both)
    assert all(engine.voices[p[1]]["split"] == "heldout_voices" for p in both)
    with pytest.raises(ValueError, match="--domain"):
        plan_sentences(open_corpus, engine, 3, 0, domain="all")
    with pytest.raises(ValueError, match="--open-frac"):  # a grammar-only corpus has no open
        plan_sentences(tiny_corpus, _engine(tiny_corpus), 3, 0, domain="open")


@pytest.mark.slow
def test_evaluate_both_domains(tmp_path, open_corpus, tiny_tinycosy):
    from interp.models.evaluate import EvalConfig, evaluate_tts

    cfg = EvalConfig(corpus=str(open_corpus), model=str(tiny_tinycosy[0]), n=1, examples=0,
                     out=str(tmp_path), tokens=str(tmp_path / "none"), n_reference=2,
                     domain="both")
    r = evaluate_tts(cfg)
    samples = json.loads((tmp_path / "eval.json").read_text())["samples"]
    assert [s["domain"] for s in samples] == ["grammar", "open"] and r["n_sentences"] == 2
    assert set(r["by_domain"]) == {"grammar", "open"}
    assert all(f["n_sentences"] == 1 and "text_conditioning_nats" in f
               for f in r["by_domain"].values())
    heard = r["measured_with"].startswith("listening")
    for s in samples:  # both decodes, of the output and of the espeak reference
        for key in ("wer", "wer_greedy", "wer_reference_greedy", "wer_roundtrip_reference_greedy",
                    "wer_open", "wer_reference_open", "wer_roundtrip_reference_open"):
            assert (s[key] is not None) == heard, key
    if heard:
        from interp.instruments.text import wer

        assert all(s["wer_greedy"] == pytest.approx(wer(s["text"], s["transcript_greedy"]))
                   for s in samples)
        assert r["wer_greedy"] == pytest.approx(sum(s["wer_greedy"] for s in samples) / 2,
                                                abs=1e-4)
        w = r["word_recall"]  # open words split by whether the corpus's training text has them
        assert w["n_seen"] + w["n_unseen"] == len(samples[1]["text"].split())
        assert r["by_domain"]["grammar"]["word_recall"].get("unseen") is None
    if heard:  # the same plan again, paired with the first run: per domain, on its own decode
        again = evaluate_tts(replace(cfg, out=str(tmp_path / "again"),
                                     baseline=str(tmp_path / "eval.json")))
        by = again["vs_baseline_by_domain"]
        assert by["grammar"]["wer_key"] == "wer" and by["open"]["wer_key"] == "wer_open"
        assert by["open"]["wer_diff"]["n"] == 1
    # the same outputs heard again (--rescore): nothing generated, every figure measured anew
    # from the kept speech tokens, so with the same ears the same record
    assert all(set(s["speech_tokens"]) == {"normal", "slow", "fast", "laughter"} for s in samples)
    re = evaluate_tts(EvalConfig(rescore=str(tmp_path), out=str(tmp_path / "re"),
                                 n_reference=2))
    assert json.loads((tmp_path / "re" / "eval.json").read_text())["samples"] == samples
    assert re["wer"] == r["wer"] and re["config"]["model"] == cfg.model
    with pytest.raises(ValueError, match="--out"):  # never over the evaluation it hears
        evaluate_tts(EvalConfig(rescore=str(tmp_path), out=str(tmp_path)))
    bare = tmp_path / "bare"
    bare.mkdir()
    old = json.loads((tmp_path / "eval.json").read_text())
    (bare / "eval.json").write_text(json.dumps(
        old | {"samples": [{k: v for k, v in s.items() if k != "speech_tokens"} for s in samples]}))
    with pytest.raises(ValueError, match="no speech tokens"):
        evaluate_tts(EvalConfig(rescore=str(bare), out=str(tmp_path / "re2")))
    only = evaluate_tts(replace(cfg, domain="open", out=str(tmp_path / "open")))
    assert "by_domain" not in only and only["n_sentences"] == 1
    rows = json.loads((tmp_path / "open" / "eval.json").read_text())["samples"]
    assert rows[0]["text"] == samples[1]["text"]  # the open half of `both` is the open plan


def test_another_codecs_tokens_are_refused_before_generating(tmp_path, tiny_corpus,
                                                             tiny_tinycosy):
    """`make tinycosy TC_CODEC=…`: the baseline must not read the new codec's tokens as its own
    (its teacher-forced figures would be another code book's); refused before anything is made."""
    from interp.models.evaluate import EvalConfig, evaluate_tts

    toks = tmp_path / "tokens"
    toks.mkdir()
    (toks / "manifest.json").write_text(json.dumps(
        {"codec": "0" * 16, "codec_dir": "runs/other_codec", "n_codes": 64}))
    with pytest.raises(ValueError, match="holds speech tokens of the codec in runs/other_codec"):
        evaluate_tts(EvalConfig(corpus=str(tiny_corpus), model=str(tiny_tinycosy[0]), n=1,
                                examples=0, out=str(tmp_path / "ev"), tokens=str(toks)))
    assert not (tmp_path / "ev" / "eval.json").exists()


def test_a_killed_evaluation_resumes_where_it_stopped(tmp_path, open_corpus, tiny_tinycosy,
                                                      monkeypatch):
    """SIGINT mid-evaluation keeps the items finished (items.partial.jsonl); the same command
    again makes only the rest, and the record is the uninterrupted one's, item for item."""
    import os
    import signal

    import interp.models.evaluate as ev
    from interp.cli import StageInterrupted

    cfg = ev.EvalConfig(corpus=str(open_corpus), model=str(tiny_tinycosy[0]), n=1, examples=0,
                        out=str(tmp_path / "whole"), tokens=str(tmp_path / "none"),
                        n_reference=2, domain="both")
    whole = json.loads(json.dumps(ev.evaluate_tts(cfg)))  # as read back from eval.json
    assert not (tmp_path / "whole" / ev.PARTIAL).exists()  # eval.json has everything
    speak, spoken = ev.speak, []

    def speak_then_kill(engine, listen, c, i, *rest):
        spoken.append(i)
        if len(spoken) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-item: the item is finished first
        return speak(engine, listen, c, i, *rest)

    monkeypatch.setattr(ev, "speak", speak_then_kill)
    cut = replace(cfg, out=str(tmp_path / "cut"))
    with pytest.raises(StageInterrupted, match="1 of 2 items kept"):
        ev.evaluate_tts(cut)
    assert not (tmp_path / "cut" / "eval.json").exists()
    with pytest.raises(ValueError, match="other settings"):  # never mixed with another plan
        ev.evaluate_tts(replace(cut, seed=1))
    again = ev.evaluate_tts(replace(cut, n_reference=2, examples=1))  # figures-only settings
    assert spoken == [0, 1]  # the first item was not made twice
    saved = json.loads((tmp_path / "cut" / "eval.json").read_text())
    assert saved["samples"] == json.loads((tmp_path / "whole" / "eval.json").read_text())["samples"]
    assert again["wer"] == whole["wer"] and again["laughter_with_tag"] == whole["laughter_with_tag"]
