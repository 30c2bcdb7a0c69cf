"""steering.edit_compare beyond tests/test_tinyedit.py (which checks the table, resume, the
refusal of a TinyCosy SAE and exactness at strength 0): strengths as one number or per
operation, and a dose-response in one folder — other strengths add steered rows, judged afresh,
without redoing the unsteered ones."""

from __future__ import annotations

import argparse
import csv
import json

import pytest

import tests.test_tinyedit as te
from interp.cli import add_config_args, config_from_args
from steering.edit_compare import (
    METHODS,
    ROWS,
    TARGETS,
    EditSteerConfig,
    compare,
    read_edit_rows,
    unit_key,
)

# the TinyEdit fixtures (tiny pairs, a 5-step TinyEdit, its layer-1 SAE) of test_tinyedit.py
tiny_pairs = te.tiny_pairs
tiny_tinyedit = te.tiny_tinyedit
tiny_edit_sae = te.tiny_edit_sae


def test_strengths_one_number_per_operation_or_a_clear_error(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_args(parser, EditSteerConfig)
    cfg = config_from_args(EditSteerConfig, parser.parse_args(["--strength", "3"]))
    assert cfg.strength_table() == dict.fromkeys(TARGETS, 3.0)
    cfg = EditSteerConfig(strengths="gender=8, faster=2")
    assert (cfg.strength("gender"), cfg.strength("faster"), cfg.strength("slower")) == (8, 2, 4)
    for bad, msg in (("gender=x", "give one number"), ("gender", "give one number"),
                     ("nan", "give one number"), ("accent=2", r"names \['accent'\]")):
        with pytest.raises(ValueError, match=msg):
            EditSteerConfig(strengths=bad).strength_table()
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="--strengths"):  # before any model or folder
        compare(EditSteerConfig(strengths="gender=", out=str(out), sae=str(tmp_path / "no")))
    assert not out.exists()


def test_rows_of_older_runs_are_keyed_by_the_strength_they_record(tmp_path):
    old = [{"key": "p1|none", "pair_id": "p1", "operation": "gender", "method": "none",
            "strength": 8.0},
           {"key": "p1|steer", "pair_id": "p1", "operation": "gender", "method": "steer",
            "strength": 8.0},
           {"key": "p2|steer", "pair_id": "p2", "operation": "remove_laughter",
            "method": "steer", "strength": 4.0}]
    (tmp_path / ROWS).write_text("".join(json.dumps(r) + "\n" for r in old) + '{"torn')
    assert set(read_edit_rows(tmp_path)) == {"p1|none", "p1|steer|s8", "p2|steer"}
    assert unit_key("p1", "steer", 8.0) == "p1|steer|s8" and unit_key("p1", "none", None) == \
        "p1|none"


def test_other_strengths_in_one_folder_make_a_dose_response(
        tmp_path, tiny_tinyedit, tiny_pairs, tiny_codec_dir, tiny_edit_sae):
    store, sae = tiny_edit_sae
    base = dict(sae=str(sae), layer=1, store=str(store), pairs=str(tiny_pairs),
                model=str(tiny_tinyedit[0]),
                split="train,heldout_sentences,heldout_voices", n=1, operations="gender",
                out=str(tmp_path / "cmp"))
    out = tmp_path / "cmp"
    compare(EditSteerConfig(strengths="gender=2", **base))
    first = (out / ROWS).read_text().splitlines()
    assert len(first) == len(METHODS)
    r = compare(EditSteerConfig(strengths="gender=20", **base))
    lines = (out / ROWS).read_text().splitlines()
    assert lines[:len(first)] == first  # nothing redone
    new = [json.loads(x) for x in lines[len(first):]]
    assert sorted(x["method"] for x in new) == sorted(m for m in METHODS
                                                       if m not in ("none", "instruct"))
    assert {x["strength"] for x in new} == {20.0}
    steer = r["summary"]["gender"]["steer"]
    assert steer["strength"] == 20.0 and r["summary"]["gender"]["none"]["strength"] is None
    assert steer["measure"]["name"] == "p_target_gender"
    want_male = next(x for x in new if x["method"] == "steer")["target"] == "male"
    p_male = next(x for x in new if x["method"] == "steer")["p_male"]
    assert steer["measure"]["mean"] == pytest.approx(p_male if want_male else 1 - p_male,
                                                      abs=1e-4)
    dose = r["by_strength"]["gender"]
    assert list(dose["steer"]) == ["2", "20"] and list(dose["none"]) == ["-"]
    with open(out / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(lines)
    assert {(t["method"], t["strength"]) for t in table if t["method"] == "steer"} == {
        ("steer", "2.0"), ("steer", "20.0")}
    assert {t["strength"] for t in table if t["method"] == "none"} == {""}
    wavs = {x["wav"] for x in map(json.loads, lines)}
    assert len(wavs) == len(lines)  # no output overwrites another
    # the judge scored the strength-20 output as a new sample, not the strength-2 answers
    judged = (out / "judge" / "steer" / "judged" / "steer" / "results.jsonl").read_text()
    assert len({json.loads(x)["id"] for x in judged.splitlines()}) == 2
    compare(EditSteerConfig(strengths="gender=2", **base))
    assert (out / ROWS).read_text().splitlines() == lines  # both strengths already there


def _toward_male(d: int):
    from steering.select import TargetSelection

    return TargetSelection("male", [0, 1, 2], [1.0, 1.0, 1.0], [1.0] * 3, 1.0, [0.0] * d,
                           [0.0] * d, [3, 4, 5], [1.0] * 3, [1.0] + [0.0] * (d - 1), [1, 1],
                           "contrastive")


def test_tts_and_edit_experiments_go_through_one_engine(
        tmp_path, monkeypatch, tiny_tinycosy, tiny_sae, tiny_tinyedit, tiny_pairs,
        tiny_codec_dir, tiny_edit_sae):
    """A sentence in a voice and an edit pair are items of the same engine: one Steerer, one
    `run_units` (generate → render → wav → measure → row, resumed by key), the item deciding
    its request, sampling, key and measure."""
    import steering.run
    from interp.corpus.table import load_audio, load_table
    from interp.edit.build import load_pairs
    from interp.edit.model import EDIT_SAMPLING
    from interp.models.evaluate import Listener
    from interp.models.registry import load_backbone
    from sae.io import load_sae
    from steering import edit_compare, experiment
    from steering.edit_items import EditItem, PairSource, plan_edit_units

    assert steering.run.run_units is edit_compare.run_units is experiment.run_units
    calls = []
    real = experiment.generate_steered
    monkeypatch.setattr(experiment, "generate_steered", lambda bb, req, ivs, seed, sampling: (
        calls.append((bb.name, len(ivs), sampling)) or real(bb, req, ivs, seed, sampling)))
    hook = "blocks.1.hook_resid_post"

    tts_bb = load_backbone(str(tiny_tinycosy[0]), "cpu")
    voice, prompt = sorted(tts_bb.voices.items())[0]
    sae = load_sae(tiny_sae, tts_bb, hook)
    tts = experiment.Steerer(tts_bb, sae, hook, {"male": _toward_male(sae.cfg.d_in)})
    tts_units = experiment.plan_units(
        [experiment.TTSItem(0, "the red lamp is here", voice, prompt["gender"])], ["male"],
        [0.0, 2.0], ("sae", "prompt"))

    edit_bb = load_backbone(str(tiny_tinyedit[0]), "cpu")
    pair = next(p for p in load_pairs(tiny_pairs) if p["operation"] == "gender")
    row = next(r for r in load_table(tiny_pairs) if r["utt_id"] == pair["source_id"])
    source = PairSource(edit_bb, lambda: load_audio(tiny_pairs, row)[0],
                        Listener(tiny_pairs, edit_bb.codec), pair["text_plain"])
    sae = load_sae(tiny_edit_sae[1], edit_bb, hook)
    edit = experiment.Steerer(edit_bb, sae, hook, {pair["target_gender"]:
                                                   _toward_male(sae.cfg.d_in)})
    edit_units = plan_edit_units([EditItem(pair, source)], lambda op: 2.0)

    for steerer, units, name in ((tts, tts_units, "tts"), (edit, edit_units, "edit")):
        out = tmp_path / name
        out.mkdir()
        rows = list(experiment.run_units(steerer, units, out))
        assert [r["key"] for r in rows] == [u.key for u in units]
        assert all((out / r["wav"]).stat().st_size > 44 for r in rows)
        assert all(r["n_tokens"] > 0 and "wer" in r for r in rows)
        assert list(experiment.run_units(steerer, units, out)) == rows  # resumed: nothing new
    assert [r["key"] for r in map(json.loads, (tmp_path / "tts" / ROWS).open())] == [
        "0|none|-|0", "0|sae|male|2", "0|prompt|male|1"]
    assert {json.loads(x)["key"] for x in (tmp_path / "edit" / ROWS).open()} == {
        unit_key(pair["pair_id"], m, 2.0 if m not in ("none", "instruct") else None)
        for m in METHODS}
    assert calls == [("tinycosy", 0, None), ("tinycosy", 1, None), ("tinycosy", 0, None),
                     *[("tinyedit", int(m not in ("none", "instruct")), EDIT_SAMPLING)
                       for m in METHODS]]
