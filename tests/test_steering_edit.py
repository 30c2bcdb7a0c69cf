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
