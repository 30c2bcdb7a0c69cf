"""Concepts from the data (interp.concepts): the presets select exactly what the hard-wired code
did, a concept of your own goes through the probes and latent selection, and bad definitions
fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from interp.concepts import (
    PRESETS,
    Concept,
    CorpusGroups,
    define,
    parse_condition,
    resolve,
)
from interp.corpus.table import load_table
from interp.store import MODALITY_CODES
from interp.store.reader import ActivationStore

# ----------------------------------------------------------------------------- the old code
# Frozen copies of the hard-wired groups before issue 35 (steering/select.py and
# sae/probes_data.py), the reference the presets must reproduce position for position.


def _old_utterance_arrays(rows):
    return {"male": np.array([r["gender"] == "male" for r in rows]),
            "female": np.array([r["gender"] == "female" for r in rows]),
            "slow": np.array([r["rate_bin"] == "slow" for r in rows]),
            "fast": np.array([r["rate_bin"] == "fast" for r in rows]),
            "untagged": np.array([not r["tags"] for r in rows])}


def _old_laughter_positions(meta, rows):
    out = np.zeros(len(meta["utt"]), dtype=bool)
    speech = meta["modality"] == MODALITY_CODES["speech"]
    for u in np.unique(meta["src_utt"][speech]):
        spans = [(t["start"], t["end"]) for t in rows[u]["tags"] if t.get("tag") == "laughter"]
        if not spans:
            continue
        at = speech & (meta["src_utt"] == u)
        for a, b in spans:
            out |= at & (meta["t0"] < b) & (meta["t1"] > a)
    return out


_OLD = {"laughter": {"laughter": ("laughter", "no_laughter")},
        "gender": {"male": ("male", "female"), "female": ("female", "male")},
        "rate": {"slow": ("slow", "fast"), "fast": ("fast", "slow")}}


def _old_position_groups(concept, meta, rows, arrays):
    speech = meta["modality"] == MODALITY_CODES["speech"]
    src = meta["src_utt"]
    if concept == "laughter":
        return {"laughter": _old_laughter_positions(meta, rows),
                "no_laughter": speech & arrays["untagged"][src]}
    names = [g for pair in _OLD[concept].values() for g in pair]
    return {g: speech & arrays[g][src] for g in dict.fromkeys(names)}


def _old_probe_labels(meta, rows):
    keep = np.nonzero(meta["modality"] == MODALITY_CODES["speech"])[0]
    src, t0, t1 = meta["src_utt"][keep], meta["t0"][keep], meta["t1"][keep]
    laughs = [[(t["start"], t["end"]) for t in r["tags"] if t["tag"] == "laughter"] for r in rows]
    laugh = np.zeros(len(keep), bool)
    for u in np.unique(src):
        if laughs[u]:
            at = src == u
            for a, b in laughs[u]:
                laugh[at] |= (t0[at] < b) & (t1[at] > a)
    cols = {"gender": "gender", "accent": "accent", "rate": "rate_bin"}
    return {"laughter": np.where(laugh, "laughter", "none"),
            **{c: np.array([r[k] for r in rows])[src] for c, k in cols.items()}}


# ----------------------------------------------------------------------------- definitions

def test_define_parses_groups_and_conditions():
    c = define("whisper", ["style=whisper", "style=default,gender!=male"], "Please whisper.",
               "Is <audio output> whispered?")
    (t,) = c.targets
    assert (t.name, t.ask, t.instruction) == ("whisper", "instruction", "Please whisper.")
    assert t.positive.name == "style=whisper" and not t.positive.complement
    assert [str(x) for x in t.negative.conditions] == ["style=default", "gender!=male"]
    assert Concept.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    rest = define("breathy", ["tag=breath"]).targets[0]
    assert rest.negative.complement and rest.negative.conditions == rest.positive.conditions
    assert rest.ask == ""  # no instruction: no prompt baseline
    assert resolve("gender") is PRESETS["gender"]
    assert parse_condition(" tag = none ").value == "none"


@pytest.mark.parametrize("name, groups, message", [
    ("whisper", [], "unknown concept 'whisper'"),
    ("whisper", ["style"], "malformed condition 'style'"),
    ("whisper", ["style=whisper", "=default"], "malformed condition '=default'"),
    ("whisper", ["style=whisper", "style="], "malformed condition 'style='"),
    ("whisper", ["a=1", "b=2", "c=3"], "not 3"),
    ("whisper", ["style=x", "style=x"], "both groups are style=x"),
    ("laughter", ["tag=laughter"], "built-in concept"),
    ("male", ["gender=male"], "built-in concept"),
    ("two words", ["style=x"], "concept name"),
])
def test_bad_definitions(name, groups, message):
    with pytest.raises(ValueError) as exc:
        resolve(name, groups)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_column_and_empty_group_on_the_corpus(tiny_corpus):
    rows = load_table(tiny_corpus)
    with pytest.raises(ValueError) as exc:
        CorpusGroups(define("whisper", ["style=whisper", "style=default"]), rows,
                     str(tiny_corpus))
    msg = str(exc.value)
    assert "unknown column 'style'" in msg and "accent" in msg and "rate_bin" in msg
    with pytest.raises(ValueError) as exc:
        CorpusGroups(define("aussie", ["accent=en-au", "accent=en-us"]), rows, str(tiny_corpus))
    msg = str(exc.value)
    assert "group 'accent=en-au' of 'aussie' holds no utterance" in msg
    assert "accent=en-au: 0" in msg and "accent values: " in msg and "en-us 7" in msg
    assert "\n" not in msg


def test_label_column_values_compare_as_text(tmp_path, tiny_corpus):
    """A label column of an imported corpus (here added to a copy of the table), with numbers,
    booleans and gaps, compared as text."""
    rows = load_table(tiny_corpus)
    for i, r in enumerate(rows):
        r["style"] = ["whisper", "default", None][i % 3]
        r["loud"] = i % 2 == 0
        r["take"] = i % 4
    g = CorpusGroups(define("w", ["style=whisper,loud=true", "take=3"]), rows)
    assert g.utterance["style=whisper,loud=true"].tolist() == [
        i % 3 == 0 and i % 2 == 0 for i in range(len(rows))]
    assert g.utterance["take=3"].sum() == len(rows) // 4
    rest = CorpusGroups(define("w", ["style=whisper"]), rows)
    assert rest.utterance["not style=whisper"].tolist() == [i % 3 != 0 for i in range(len(rows))]


# ----------------------------------------------------------------------------- the presets

@pytest.fixture(scope="module")
def shards(tiny_store, tiny_heldout_store):
    return [ActivationStore(f, 1) for f in (tiny_store, tiny_heldout_store)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_give_the_old_groups(name, shards, tiny_corpus):
    rows = load_table(tiny_corpus)
    arrays = _old_utterance_arrays(rows)
    groups = CorpusGroups(PRESETS[name], rows, str(tiny_corpus))
    assert {t: (a, b) for t, (a, b) in ((t.name, (t.positive.name, t.negative.name))
                                        for t in PRESETS[name].targets)} == _OLD[name]
    n = 0
    for store in shards:
        for shard in store.shards:
            meta = store.meta(shard)
            speech = meta["modality"] == MODALITY_CODES["speech"]
            old = _old_position_groups(name, meta, rows, arrays)
            new = groups.positions(meta, speech)
            assert list(new) == list(old)  # same groups in the same order (the same rng draws)
            for g in old:
                assert np.array_equal(new[g], old[g]), (name, g, shard)
                n += int(old[g].sum())
    assert n > 0


def test_preset_by_name_or_definition(tiny_sae, tiny_store, tiny_corpus):
    """A preset named or given as its Concept selects alike (the positions themselves are
    compared with the old code above)."""
    from sae.io import load_sae
    from steering.select import select_concept

    sae = load_sae(tiny_sae)
    store = ActivationStore(tiny_store, 1)
    for name in ("laughter", "gender"):
        a = select_concept(sae, store, tiny_corpus, name, 3, None, 300, seed=2)
        b = select_concept(sae, store, tiny_corpus, PRESETS[name], 3, None, 300, seed=2)
        assert a == b
        assert all(sum(s.n_positions) > 0 for s in a.values())


def test_probe_labels_unchanged(shards, tiny_corpus):
    from sae.probes_data import speech_positions

    rows = load_table(tiny_corpus)
    pos = speech_positions(shards, tiny_corpus)
    old = [_old_probe_labels(store.meta(s), rows) for store in shards for s in store.shards]
    for c in ("laughter", "gender", "accent", "rate"):
        want = np.concatenate([o[c] for o in old])
        assert pos.labels[c].dtype.kind == "U" and np.array_equal(pos.labels[c], want), c


# ----------------------------------------------------------------------------- your own

BREATH = ["tag=breath", "tag=none"]  # a tag the built-ins never used
SCOTS = ["accent=en-gb-scotland", "accent=en-gb"]  # a column value the built-ins never used


def test_own_concept_selects_latents(tiny_sae, tiny_store, tiny_corpus):
    from sae.io import load_sae
    from steering.select import select_concept

    sae = load_sae(tiny_sae)
    store = ActivationStore(tiny_store, 1)
    for name, groups in (("breath", BREATH), ("scottish", SCOTS)):
        sel = select_concept(sae, store, tiny_corpus, define(name, groups), 3, None, 300)
        assert list(sel) == [name]
        s = sel[name]
        assert 0 < len(s.latents) <= 3 and all(n > 0 for n in s.n_positions)
        assert np.isclose(np.linalg.norm(s.decoder), s.unit)


def test_own_concept_without_positions_in_the_store(tiny_sae, tiny_store, tiny_corpus):
    """en-us voices are held out: the train store has none of their positions."""
    from sae.io import load_sae
    from steering.select import group_stats

    with pytest.raises(ValueError) as exc:
        group_stats(load_sae(tiny_sae), ActivationStore(tiny_store, 1), tiny_corpus,
                    define("us", ["accent=en-us"]), 200)
    assert "no positions for group(s) ['accent=en-us']" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_own_concept_probe(tmp_path, tiny_store, tiny_heldout_store, tiny_corpus, tiny_sae):
    from sae.probes import ProbeConfig, run_probes

    cfg = ProbeConfig(store=str(tiny_store), test_store=str(tiny_heldout_store),
                      corpus=str(tiny_corpus), sae_root=str(tiny_sae.parent), max_train=800,
                      max_test=800, out=str(tmp_path), concepts=("gender", "variant"),
                      concept="breathing", groups=("tag=breath",))
    result = run_probes(cfg)
    by = {(r["concept"], r["features"]) for r in result["probes"]}
    assert by == {(c, f) for c in ("gender", "variant", "breathing") for f in ("raw", "sae")}
    info = result["concepts"]["breathing"]
    assert set(info["train"]["classes"]) == {"tag=breath", "not tag=breath"}
    assert result["definitions"]["breathing"]["targets"][0]["positive"]["name"] == "tag=breath"
    row = next(r for r in result["probes"] if r["concept"] == "breathing")
    assert row["chance_balanced_accuracy"] == 0.5 and row["n_train"] > 0
    # the built-in gender probe is the same whether or not a concept of your own runs beside it
    alone = run_probes(ProbeConfig(**{**cfg.__dict__, "concept": "", "groups": (),
                                      "concepts": ("gender",), "out": str(tmp_path / "b")}))
    g = [r for r in result["probes"] if r["concept"] == "gender"]
    assert g == [r for r in alone["probes"] if r["concept"] == "gender"]


def test_own_concept_probe_needs_both_splits(tmp_path, tiny_store, tiny_heldout_store,
                                             tiny_corpus):
    from sae.probes import ProbeConfig, run_probes

    cfg = ProbeConfig(store=str(tiny_store), test_store=str(tiny_heldout_store),
                      corpus=str(tiny_corpus), sae_root="", out=str(tmp_path),
                      concepts=("gender",), concept="scottish", groups=tuple(SCOTS))
    with pytest.raises(ValueError, match="heldout_voices: none"):
        run_probes(cfg)


def test_select_cli_writes_own_concept_beside_presets(tmp_path, tiny_sae, tiny_store,
                                                      tiny_corpus):
    out = tmp_path / "concepts.json"
    base = [sys.executable, "-m", "steering.select", "--sae", str(tiny_sae), "--store",
            str(tiny_store), "--corpus", str(tiny_corpus), "--k", "2", "--max-positions", "300",
            "--out", str(out)]
    proc = subprocess.run(base + ["--concepts", "laughter"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = json.loads(out.read_text())
    assert "definitions" not in first
    proc = subprocess.run(base + ["--concept", "breath", "--groups", *BREATH,
                                  "--concept-instruction", "Take a breath."],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads(out.read_text())
    assert set(saved["concepts"]) == {"laughter", "breath"}
    assert saved["concepts"]["laughter"] == first["concepts"]["laughter"]
    d = saved["definitions"]["breath"]
    assert d["targets"][0]["instruction"] == "Take a breath." and d["max_positions"] == 300
    assert Concept.from_dict(d) == define("breath", BREATH, "Take a breath.")
    # Workbench.steer and the steering CLI read the target like a preset's
    from steering.select import load_selection

    assert load_selection(saved["concepts"]["breath"])["breath"].latents


@pytest.mark.parametrize("extra, message", [
    (["--concept", "whisper"], "unknown concept 'whisper'"),
    (["--concept", "whisper", "--groups", "style=whisper", "style=default"],
     "unknown column 'style'"),
    (["--concept", "w", "--groups", "accent"], "malformed condition 'accent'"),
    (["--concept", "us", "--groups", "accent=en-au"], "holds no utterance"),
    (["--groups", "accent=en-us"], "need --concept"),
])
def test_select_cli_errors_are_one_line(extra, message, tmp_path, tiny_sae, tiny_store,
                                        tiny_corpus):
    proc = subprocess.run(
        [sys.executable, "-m", "steering.select", "--sae", str(tiny_sae), "--store",
         str(tiny_store), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "c.json"),
         *extra], capture_output=True, text=True)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and message in err, err


# ----------------------------------------------------------------------------- steering.run

@pytest.mark.slow
def test_steering_run_own_concept(tmp_path, tiny_tinycosy, tiny_sae, tiny_store, tiny_corpus):
    """The smallest experiment for a concept of your own: its latents, the prompt baseline
    with its instruction, its success classifier, its MMAE rubric; then a resume."""
    from interp.judge.format import load_metadata
    from steering import run as steer_run

    out = tmp_path / "breath"
    cfg = steer_run.SteeringConfig(
        concept="breath", groups=tuple(BREATH), concept_instruction="Take a breath.",
        concept_rubric="Does <audio output> contain a breath?", layer=1, strength="0,2", n=1,
        k=2, methods="sae,diffmeans,prompt", model=str(tiny_tinycosy[0]), sae=str(tiny_sae),
        store=str(tiny_store), corpus=str(tiny_corpus), max_positions=300, out=str(out),
        classifier_utts=8, judge="acoustic")
    s = steer_run.run_steering(cfg)
    assert s["concept"] == "breath" and list(s["sae"]["by_target"]) == ["breath"]
    assert s["definition"]["targets"][0]["negative"]["name"] == "tag=none"
    m = s["success_measure"]
    assert m["metric"] == "p_concept" and m["utterances"]["train_positive"] == 8
    assert {(e["method"], e["strength"]) for e in s["results"]} == {
        ("none", 0.0), ("sae", 0.0), ("sae", 2.0), ("diffmeans", 0.0), ("diffmeans", 2.0),
        ("prompt", 1.0)}
    assert s["results"][0]["p_concept"]["n"] == 1
    assert s["effects"]["breath"]["2"]["metric"] == "p_concept"
    rows = [json.loads(x) for x in (out / "rows.jsonl").read_text().splitlines()]
    assert all(0 <= r["p_concept"] <= 1 for r in rows if r["n_tokens"] > 5)
    assert "p_concept" in (out / "metrics.csv").read_text().splitlines()[0]
    (sample,) = load_metadata(out / "mmae" / "breath_s2" / "MMAE-meta.json").values()
    assert sample.instruction == "Take a breath."
    assert sample.rubrics[0].question == "Does <audio output> contain a breath?"
    assert s["judge"]["breath_s2"]["n"] == 1
    # the prompt baseline asked the instruction
    from steering.experiment import TTSItem, prompt_variant

    item = TTSItem(0, "the red lamp", "v", "male", cfg.definition())
    assert prompt_variant(None, item, cfg.definition().targets[0], 0)[2] == "Take a breath."
    # resuming keeps the classifier and the rows; another definition in the folder is refused
    again = steer_run.run_steering(cfg)
    assert again["results"] == s["results"]
    with pytest.raises(ValueError, match="another definition"):
        steer_run.run_steering(steer_run.SteeringConfig(**{**cfg.__dict__,
                                                           "groups": ("tag=breath",)}))


def test_preset_prompts_unchanged():
    """The presets' prompt baselines ask what they asked before (interp.models.eval_plan)."""
    from interp.models.eval_plan import RATES
    from steering.experiment import TTSItem, prompt_variant

    item = TTSItem(3, "the red lamp is here today", "v", "male")
    for t in ("slow", "fast"):
        assert prompt_variant(None, item, t, 0) == (item.text, "v", RATES[t])
    text, voice, instr = prompt_variant(None, item, "laughter", 0)
    assert "[laughter]" in text and instr is None
    assert prompt_variant(None, item, "male", 0) == (item.text, "v", None)


@pytest.mark.parametrize("extra, message", [
    (["--concept", "whisper"], "unknown concept 'whisper'"),
    (["--concept", "whisper", "--groups", "style=whisper", "style=default"],
     "unknown column 'style'"),
    (["--concept", "w", "--groups", "accent=en-gb", "rate_bin"], "malformed condition"),
    (["--concept", "au", "--groups", "accent=en-au"], "holds no utterance"),
    (["--concept", "rate", "--concept-instruction", "Faster."], "give --groups too"),
])
def test_steering_run_errors_are_one_line(extra, message, tmp_path, tiny_corpus, monkeypatch,
                                          capsys):
    from interp.cli import run_cli
    from steering import run as steer_run

    monkeypatch.setattr(sys, "argv", ["steering.run", "--corpus", str(tiny_corpus), "--out",
                                      str(tmp_path), *extra])
    with pytest.raises(SystemExit) as exc:
        run_cli(steer_run.main)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and message in err, err


# ----------------------------------------------------------------------------- autointerp

def test_label_columns_are_planted_attributes(tiny_store, tiny_corpus):
    """An imported corpus's label columns (here added to the tiny table's rows) become planted
    attributes `label:COLUMN=VALUE`, read at the utterance level too; the presets' stay."""
    from sae.attributes import build_attributes, describe
    from sae.latent_stats import META_KEYS, LatentStats, with_sequences
    from sae.planted import utterance_recall

    store = ActivationStore(tiny_store, 1)
    metas = [store.meta(s) for s in store.shards]
    meta = with_sequences({k: np.concatenate([m[k] for m in metas]) for k in META_KEYS})
    rows = load_table(tiny_corpus)
    plain = build_attributes(meta, rows, {}, None)
    for r in rows:
        r["style"] = "whisper" if r["gender"] == "female" else "default"
    attrs = build_attributes(meta, rows, {}, None)
    assert set(attrs.names) - set(plain.names) == {"label:style=whisper", "label:style=default"}
    assert {"label:style=whisper", "gender:female", "tag:laughter"} <= set(attrs.planted())
    assert np.array_equal(attrs.column("label:style=whisper"), attrs.column("gender:female"))
    assert describe("label:style=whisper").startswith("style whisper (speech positions")
    # a latent that is the whisper column reads it perfectly per utterance
    col = attrs.column("label:style=whisper").astype(np.float32)
    import scipy.sparse as sp

    stats = LatentStats(sp.csc_matrix(col[:, None] + 0.0), meta)
    explain = meta["seq"] % 2 == 0
    got = utterance_recall(stats, rows, explain, np.array([0]), np.array([0]),
                           ["label:style=whisper", "gender:female"])
    assert got["label:style=whisper"]["utterance_auroc"] == 1.0
    assert got["gender:female"]["utterance_auroc"] == 1.0


def test_concept_classifier_on_the_tiny_corpus(tiny_corpus):
    from interp.corpus.table import load_audio
    from interp.instruments.concept import ConceptClassifier, fit_classifier

    clf = fit_classifier(tiny_corpus, define("deep", ["gender=male", "gender=female"]),
                         max_per_group=12)
    r = clf.report
    assert r["utterances"]["train_positive"] == 10 and r["heldout_auroc"] > 0.8
    again = ConceptClassifier.from_dict(json.loads(json.dumps(clf.to_dict())))
    row = load_table(tiny_corpus)[0]
    audio = load_audio(tiny_corpus, row)[0]
    assert again.p(audio) == clf.p(audio) and 0 <= clf.p(audio) <= 1
    assert clf.p(audio[:100]) is None
    with pytest.raises(ValueError, match="needs train-split utterances of both groups"):
        fit_classifier(tiny_corpus, define("us", ["accent=en-us", "accent=en-gb"]))


def test_steering_run_reads_a_saved_definition(tmp_path):
    """`steering.select --concept NAME --groups ...` saved it: `steering.run --concept NAME`
    finds it in the SAE's concepts.json."""
    from steering import run as steer_run

    sae = tmp_path / "layer_1"
    sae.mkdir()
    own = define("breath", BREATH, "Take a breath.")
    (sae / "concepts.json").write_text(json.dumps(
        {"sae": "layer_1", "layer": 1, "concepts": {},
         "definitions": {"breath": {**own.to_dict(), "corpus": "c", "seed": 0}}}))
    cfg = steer_run.SteeringConfig(concept="breath", layer=1, sae=str(sae))
    assert cfg.definition() == own
    with pytest.raises(ValueError, match="unknown concept 'whisper'"):
        steer_run.SteeringConfig(concept="whisper", layer=1, sae=str(sae)).definition()
    with pytest.raises(ValueError, match="define it anew"):
        steer_run.SteeringConfig(concept="breath", layer=1, sae=str(sae),
                                 concept_rubric="Breath?").definition()


def test_merge_selection(tmp_path):
    from steering.select import merge_selection

    path = tmp_path / "concepts.json"
    presets = merge_selection(path, "layer_1", 1, {"laughter": {"laughter": 1}}, {},
                              {"max_positions": 100, "seed": 0}, False)
    assert presets == {"sae": "layer_1", "layer": 1, "max_positions": 100, "seed": 0,
                       "concepts": {"laughter": {"laughter": 1}}}
    path.write_text(json.dumps(presets))
    own = merge_selection(path, "layer_1", 1, {"breath": {"breath": 2}}, {"breath": {"x": 1}},
                          {"max_positions": 50, "seed": 3}, True)
    assert own["seed"] == 0 and set(own["concepts"]) == {"laughter", "breath"}
    assert own["definitions"] == {"breath": {"x": 1}}
    path.write_text(json.dumps(own))
    again = merge_selection(path, "layer_1", 1, {"laughter": {"laughter": 5}}, {},
                            {"max_positions": 100, "seed": 7}, False)
    assert again["seed"] == 7 and again["concepts"]["breath"] == {"breath": 2}
    assert again["definitions"] == {"breath": {"x": 1}}
    with pytest.raises(ValueError, match="another SAE"):
        merge_selection(path, "layer_2", 2, {"b": {}}, {"b": {}}, {}, True)
    assert "definitions" not in merge_selection(path, "layer_2", 2, {"laughter": {}}, {}, {},
                                                False)
