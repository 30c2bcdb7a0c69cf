"""The concept–content frontier: the score and bootstrap math on synthetic rows, strengths per
family, batched generation writing the same rows as one by one, frontier.json on the tiny
fixtures, resume, the report's section."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steering import frontier as fr
from steering.experiment import ROWS, Steerer, Unit
from steering.frontier import FrontierConfig, frontier_table
from steering.score import point_score, success


def row(item, method="none", target="-", strength=0.0, *, gender="female", laughter=0.0,
        p_male=0.1, dur=2.0, wer=0.1, emb=None) -> dict:
    return {"key": f"{item}|{method}|{target}|{strength:g}", "item": item, "method": method,
            "target": target, "strength": strength, "voice_gender": gender,
            "laughter": laughter, "p_male": p_male, "voiced_duration_s": dur, "wer": wer,
            "wer_open": wer, "emb": emb}


def emb(r):
    return r["emb"]


# -- the math ------------------------------------------------------------------------------------


def test_harmonic_mean_of_success_and_content_kept():
    assert point_score(1.0, 0.0) == 1.0
    assert point_score(0.0, 0.0) == 0.0 and point_score(1.0, 1.0) == 0.0
    assert point_score(1.0, 2.0) == 0.0 and point_score(0.5, -0.3) == pytest.approx(2 / 3)
    assert point_score(0.5, 0.5) == pytest.approx(0.5)


def test_perfect_method_at_one_strength_scores_one_and_random_scores_low():
    rng = np.random.default_rng(0)
    rows = [row(i) for i in range(20)]
    for i in range(20):
        for s in (1.0, 2.0, 4.0):
            # "sae": laughs with every word kept at 2 only; "random_latents": seldom, and words suffer
            rows.append(row(i, "sae", "laughter", s, laughter=0.9 if s == 2.0 else 0.2,
                            wer=0.1 if s == 2.0 else 0.7))
            rows.append(row(i, "random_latents", "laughter", s,
                            laughter=float(rng.random() < 0.1), wer=0.1 + rng.random() * 0.5))
    t = frontier_table(rows, n_boot=500)["laughter"]
    sae, rnd = t["sae"], t["random_latents"]
    assert sae["score"] == 1.0 and sae["best_strength"] == 2.0 and sae["ci95"] == [1.0, 1.0]
    assert [p["strength"] for p in sae["points"]] == [0.0, 1.0, 2.0, 4.0]  # 0: unsteered
    zero = sae["points"][0]
    assert zero["concept_success"] == 0.0 and zero["wer_rise"] == 0.0 and zero["score"] == 0.0
    assert rnd["score"] < 0.4
    assert rnd["ci95"][0] <= rnd["score"] <= rnd["ci95"][1]
    assert rnd["points"][1]["babble"] is not None and sae["points"][3]["babble"] == 1.0


def test_ci_contains_the_point_estimate_on_a_noisy_method():
    rng = np.random.default_rng(1)
    rows = [row(i) for i in range(30)]
    for i in range(30):
        for s in (1.0, 2.0):
            rows.append(row(i, "diffmeans", "laughter", s, laughter=float(rng.random() < 0.4 * s),
                            wer=0.1 + 0.2 * s * rng.random()))
    e = frontier_table(rows, n_boot=1000, seed=3)["laughter"]["diffmeans"]
    lo, hi = e["ci95"]
    assert lo <= e["score"] <= hi and hi - lo > 0.05
    assert e["points"][-1]["n"] == 30
    assert frontier_table(rows, n_boot=0)["laughter"]["diffmeans"]["ci95"] is None


def test_paired_difference_of_sae_methods_against_the_best_difference_of_means():
    rng = np.random.default_rng(2)
    rows = [row(i) for i in range(30)]
    for i in range(30):
        noise = rng.random()  # shared by the methods on an item: what pairing takes out
        for s in (1.0, 2.0):
            laugh = float(noise < 0.45 * s)
            rows.append(row(i, "diffmeans", "laughter", s, laughter=laugh, wer=0.1 + 0.1 * s))
            rows.append(row(i, "diffmeans_clamp", "laughter", s, laughter=laugh * 0.0, wer=0.1))
            rows.append(row(i, "sae", "laughter", s, laughter=laugh, wer=0.1 + 0.1 * s))
            rows.append(row(i, "sae_shift", "laughter", s, laughter=laugh, wer=0.1 + 0.05 * s))
    table = frontier_table(rows, n_boot=0)
    paired = fr.comparisons(rows, table, n_boot=500)["laughter"]
    assert set(paired) == {"sae − diffmeans", "sae_shift − diffmeans"}  # the best variant
    same, better = paired["sae − diffmeans"], paired["sae_shift − diffmeans"]
    assert same == {"diff": 0.0, "ci95": [0.0, 0.0]}  # the same outputs: no difference at all
    assert better["diff"] > 0 and better["ci95"][0] > 0  # fewer words lost on the same items
    assert better["diff"] == pytest.approx(table["laughter"]["sae_shift"]["score"]
                                           - table["laughter"]["diffmeans"]["score"], abs=1e-4)
    summary = {"frontier": table, "paired": {"laughter": paired}, "concept": "laughter",
               "hook": "h", "n_items": 30, "items_per_target": {"laughter": 30},
               "wer_decode": "open", "strength_units": "dmu", "out": "x"}
    assert "paired, laughter: sae_shift − diffmeans +" in fr.console_table(summary)


def test_gender_counts_only_items_of_the_other_voice_and_rate_maps_duration():
    rows = [row(0, gender="female", p_male=0.0, dur=2.0), row(1, gender="male", p_male=1.0,
                                                               dur=2.0)]
    rows += [row(0, "decoder", "male", 4.0, gender="female", p_male=0.8),
             row(1, "decoder", "male", 4.0, gender="male", p_male=0.2),  # not counted
             row(1, "decoder", "female", 4.0, gender="male", p_male=0.3),
             row(0, "prompt", "male", 1.0, gender="female", p_male=1.0)]
    t = frontier_table(rows, n_boot=0)
    male = t["male"]["decoder"]["points"]
    assert [p["n"] for p in male] == [1, 1] and male[1]["concept_success"] == 0.8
    assert t["female"]["decoder"]["points"][1]["concept_success"] == 0.7
    assert [p["strength"] for p in t["male"]["prompt"]["points"]] == [1.0]  # one point
    for target, dur, want in (("slow", 4.0, 1.0), ("slow", 5.0, 1.0), ("slow", 3.0, 0.5),
                              ("slow", 2.5, 0.25), ("slow", 1.0, 0.0), ("fast", 1.4, 1.0),
                              ("fast", 1.0, 1.0), ("fast", 1.7, 0.5), ("fast", 2.4, 0.0)):
        got = success(target, {"voiced_duration_s": dur}, {"voiced_duration_s": 2.0})
        assert got == pytest.approx(want), (target, dur)
    assert success("slow", {"voiced_duration_s": None}, {"voiced_duration_s": 2.0}) == 0.0
    rate = frontier_table([row(0), row(0, "sae", "slow", 2.0, dur=3.0)], n_boot=0)
    assert rate["slow"]["sae"]["points"][1]["length_ok"] is None  # the duration is the goal
    assert rate["slow"]["sae"]["points"][1]["concept_success"] == 0.5


def test_voice_kept_and_length_sanity():
    same, other = [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]
    rows = [row(0, emb=same), row(1, emb=other),
            row(0, "diffmeans", "laughter", 2.0, emb=same, dur=2.0),
            row(1, "diffmeans", "laughter", 2.0, emb=same, dur=5.0, wer=0.9)]
    p = frontier_table(rows, voice=emb, n_boot=0)["laughter"]["diffmeans"]["points"][1]
    assert p["length_ok"] == 0.5 and p["babble"] == 0.5 and p["n"] == 2
    assert p["voice_kept"] == pytest.approx((1.0 + -1.0) / 2, abs=1e-3)


def test_wer_field_and_missing_readings():
    rows = [row(0, wer=0.2), row(0, "sae", "laughter", 2.0, laughter=None, wer=None)]
    p = frontier_table(rows, "wer", n_boot=0)["laughter"]["sae"]["points"][1]
    assert p["concept_success"] == 0.0 and p["wer_rise"] == 0.8  # unmeasurable: a failure


def test_strength_table():
    cfg = FrontierConfig()
    t = cfg.strength_table(cfg.method_list())
    assert t["prompt"] == [1.0]
    assert t["sae"][0] == 0.0 and t["sae"] == t["random_latents"] and len(t["sae"]) >= 7
    assert t["decoder"] == t["diffmeans"] == t["random_direction"] and len(t["decoder"]) >= 7
    resid = FrontierConfig(strength_units="resid").strength_table(("sae", "decoder"))
    assert resid["sae"] == resid["decoder"] and max(resid["sae"]) <= 2
    t = FrontierConfig(strengths="3;latents:1,2;diffmeans:5").strength_table(
        ("sae", "decoder", "diffmeans"))
    assert t == {"sae": [0.0, 1.0, 2.0], "decoder": [0.0, 3.0], "diffmeans": [0.0, 5.0]}
    for bad, msg in (("x", "numbers"), ("-1", "non-negative"), ("laugh:1", "neither a family"),):
        with pytest.raises(ValueError, match=msg):
            FrontierConfig(strengths=bad).validate()
    with pytest.raises(ValueError, match="--strength-units"):
        FrontierConfig(strength_units="m").validate()
    with pytest.raises(ValueError, match="--methods"):
        FrontierConfig(methods="sae,nope").validate()
    assert FrontierConfig(concept="gender").paths()[0].as_posix() == "runs/tinycosy/frontier/gender"


def test_strength_scale_multiplies_the_edit():
    """--strength-units resid: the Steerer's per-target scale turns a unit's strength into the
    edit's (in ‖Δμ‖ units); strength 0 stays 0."""
    from steering.experiment import TTS_METHODS, TTSItem
    from steering.select import TargetSelection

    sel = TargetSelection("laughter", [0], [1.0], [1.0], 2.0, [1.0, 0, 0, 0], [2.0, 0, 0, 0],
                          [1], [1.0], [0, 1.0, 0, 0], [1, 1], "contrastive")
    st = Steerer(None, None, "blocks.0.hook_resid_post", {"laughter": sel}, scale={"laughter": 3.0})
    it = TTSItem(0, "a", "v", "female")
    modality = ["speech"] * 3
    for s, want in ((2.0, 6.0 * 2.0), (0.0, 0.0)):
        (iv,) = st.interventions(Unit(it, TTS_METHODS["diffmeans"], "laughter", s), modality)
        assert float(iv.fn.vector.norm()) == pytest.approx(want)


def test_norm_preserving_methods_are_their_families_with_keep_norm():
    from interp.hooks import KeepNorm
    from steering.experiment import DEFAULT_METHODS, TTS_METHODS, TTSItem, uses_clamp, uses_edit
    from steering.select import TargetSelection

    assert fr.family("sae_keepnorm") == "latents" and fr.family("diffmeans_keepnorm") == "directions"
    assert fr.family("random_direction_keepnorm") == "directions"
    assert TTS_METHODS["random_direction_keepnorm"].keep_norm
    assert fr.family("sae_effect_keepnorm") == "latents"
    assert TTS_METHODS["sae_effect_keepnorm"].keep_norm
    # either sae_effect method makes the run calibrate the effect latents; others do not
    assert uses_edit(("diffmeans", "sae_effect_keepnorm"), "sae_effect")
    assert not uses_edit(("sae", "sae_keepnorm", "prompt"), "sae_effect")
    assert uses_edit(("sae_ts",), "sae_ts") and not uses_edit(("diffmeans",), "sae_ts")
    assert uses_clamp(("diffmeans_clamp",)) and not uses_clamp(("diffmeans", "sae"))
    assert "sae_keepnorm" not in DEFAULT_METHODS  # chosen by name until the frontier says so
    t = FrontierConfig(strengths="latents:1,2;directions:3").strength_table(
        ("sae_keepnorm", "diffmeans_keepnorm"))
    assert t == {"sae_keepnorm": [0.0, 1.0, 2.0], "diffmeans_keepnorm": [0.0, 3.0]}
    sel = TargetSelection("laughter", [0], [1.0], [1.0], 2.0, [1.0, 0, 0, 0], [2.0, 0, 0, 0],
                          [1], [1.0], [0, 1.0, 0, 0], [1, 1], "contrastive")
    st = Steerer(None, None, "blocks.0.hook_resid_post", {"laughter": sel})
    it = TTSItem(0, "a", "v", "female")
    (iv,) = st.interventions(Unit(it, TTS_METHODS["diffmeans_keepnorm"], "laughter", 2.0),
                             ["speech"] * 3)
    assert isinstance(iv.fn, KeepNorm)
    x = torch.tensor([[[3.0, 4.0, 0.0, 0.0]]])
    assert float(iv.fn(x).norm()) == pytest.approx(5.0)


def test_diffmeans_clamp_lifts_to_the_negative_mean_plus_strength():
    from interp.hooks import ClampProjection
    from steering.experiment import DEFAULT_METHODS, TTS_METHODS, TTSItem
    from steering.methods import Method
    from steering.select import TargetSelection

    assert fr.family("diffmeans_clamp") == "directions" and "diffmeans_clamp" not in DEFAULT_METHODS
    sel = TargetSelection("laughter", [0], [1.0], [1.0], 2.0, [1.0, 0, 0, 0], [2.0, 0, 0, 0],
                          [1], [1.0], [0, 1.0, 0, 0], [1, 1], "contrastive", floor=-1.0)
    st = Steerer(None, None, "blocks.0.hook_resid_post", {"laughter": sel})
    it = TTSItem(0, "a", "v", "female")
    (iv,) = st.interventions(Unit(it, TTS_METHODS["diffmeans_clamp"], "laughter", 3.0),
                             ["speech"] * 3)
    assert isinstance(iv.fn, ClampProjection) and iv.fn.level == pytest.approx(-1.0 + 3 * 2.0)
    x = torch.tensor([[[0.5, 1.0, 0, 0], [9.0, 0, 0, 0]]])
    assert torch.allclose(iv.fn(x), torch.tensor([[[5.0, 1.0, 0, 0], [9.0, 0, 0, 0]]]))
    with pytest.raises(ValueError, match="selected before diffmeans_clamp|saved before"):
        from dataclasses import replace
        Steerer(None, None, "h", {"laughter": replace(sel, floor=None)}).interventions(
            Unit(it, TTS_METHODS["diffmeans_clamp"], "laughter", 1.0), ["speech"])
    with pytest.raises(ValueError, match="only the difference of means is clamped"):
        Method("x", edit="decoder", clamp=True)


# -- on the tiny fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_tinycosy, tiny_codec_dir, tiny_sae, tiny_store, tiny_corpus) -> dict:
    return {"layer": 1, "model": str(tiny_tinycosy[0]), "sae": str(tiny_sae),
            "store": str(tiny_store), "corpus": str(tiny_corpus), "k": 3, "max_positions": 400,
            "concept": "laughter", "n": 2, "strengths": "2", "bootstrap": 200}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny):
    """The same frontier generated one output at a time and four at a time."""
    out = {}
    for b in (1, 4):
        folder = tmp_path_factory.mktemp(f"frontier_b{b}") / "laughter"
        out[b] = (folder, fr.run_frontier(FrontierConfig(**tiny, batch_size=b, out=str(folder))))
    return out


def test_batched_rows_equal_one_by_one(runs):
    (one, _), (four, _) = runs[1], runs[4]
    rows1 = {r["key"]: r for r in map(json.loads, (one / ROWS).read_text().splitlines())}
    rows4 = {r["key"]: r for r in map(json.loads, (four / ROWS).read_text().splitlines())}
    assert len(rows1) == 2 + 2 * 7 and rows1 == rows4  # tokens, measures, wav paths
    # the edits act: some steered outputs are not the unsteered ones
    assert any(r["n_tokens"] != rows1[f"{r['item']}|none|-|0"]["n_tokens"]
               for r in rows1.values())
    for r in rows1.values():
        assert (one / r["wav"]).read_bytes() == (four / r["wav"]).read_bytes()
    assert json.loads((one / fr.FRONTIER).read_text()) == json.loads(
        (four / fr.FRONTIER).read_text())


def test_frontier_json_schema_and_names(runs):
    folder, summary = runs[4]
    table = json.loads((folder / fr.FRONTIER).read_text())
    assert list(table) == ["laughter"]
    assert set(table["laughter"]) == {"sae", "sae_shift", "decoder", "diffmeans",
                                      "random_latents", "random_direction", "prompt"}
    for method, e in table["laughter"].items():
        assert set(e) == {"score", "ci95", "best_strength", "points"}
        assert 0 <= e["score"] <= 1 and len(e["ci95"]) == 2
        assert e["ci95"][0] <= e["score"] <= e["ci95"][1]
        assert [p["strength"] for p in e["points"]] == ([1.0] if method == "prompt"
                                                        else [0.0, 2.0])
        for p in e["points"]:
            assert {"strength", "concept_success", "wer_rise", "voice_kept", "length_ok",
                    "n"} <= set(p) and p["n"] == 2
    assert summary["wer_decode"] in ("open", "lexicon", "greedy")
    assert summary["items_per_target"] == {"laughter": 2}
    assert list(summary["paired"]["laughter"]) == ["sae − diffmeans", "sae_shift − diffmeans"]
    meta = json.loads((folder / fr.SUMMARY).read_text())
    assert meta["settings"]["strength_units"] == "dmu" and meta["frontier"] == table
    html = (folder / fr.FIGURE).read_text()
    assert len(html) > 1_000_000 and "WER rise" in html
    text = fr.console_table(summary)
    assert "random_direction" in text and "laughter" in text


def test_resume_makes_nothing_and_other_settings_are_refused(runs, tiny, monkeypatch):
    folder, _ = runs[4]
    made = []
    monkeypatch.setattr(Steerer, "tokens", lambda self, u: made.append(u) or [])
    monkeypatch.setattr(Steerer, "tokens_batch", lambda self, us, reqs=None: made.extend(us) or [])
    fr.run_frontier(FrontierConfig(**tiny, out=str(folder)))
    assert made == []
    with pytest.raises(ValueError, match="strength_units 'dmu'"):
        fr.run_frontier(FrontierConfig(**tiny, out=str(folder), strength_units="resid"))


def test_a_run_of_fewer_methods_keeps_the_others_in_frontier_json(runs, tiny, tmp_path):
    import shutil

    folder = tmp_path / "laughter"
    shutil.copytree(runs[4][0], folder)
    before = json.loads((folder / fr.FRONTIER).read_text())
    summary = fr.run_frontier(FrontierConfig(**{**tiny, "methods": "diffmeans"}, out=str(folder)))
    after = json.loads((folder / fr.FRONTIER).read_text())

    def sans_voice(t):  # voice_kept is standardised over the outputs of the run that scored it
        return {m: {**e, "points": [{k: v for k, v in p.items() if k != "voice_kept"}
                                    for p in e["points"]]} for m, e in t["laughter"].items()}

    assert list(after["laughter"]) == list(before["laughter"])
    assert sans_voice(after) == sans_voice(before)  # diffmeans remade alike, the rest kept
    assert all(after["laughter"][m] == before["laughter"][m] for m in before["laughter"]
               if m != "diffmeans")
    assert sorted(summary["kept_from_earlier_runs"]["laughter"]) == sorted(
        set(before["laughter"]) - {"diffmeans"})
    # a method run again replaces its own entry and nothing else
    changed = {"laughter": {"diffmeans": {**before["laughter"]["diffmeans"], "score": 0.0}}}
    merged, kept = fr.merge_earlier(changed, folder / fr.FRONTIER)
    assert merged["laughter"]["diffmeans"]["score"] == 0.0
    assert merged["laughter"]["sae"] == before["laughter"]["sae"] and "diffmeans" not in kept[
        "laughter"]


def test_sae_shift_on_a_folder_selected_before_it_and_another_count_refused(runs, tiny,
                                                                           tmp_path):
    import shutil

    folder = tmp_path / "laughter"
    shutil.copytree(runs[4][0], folder)
    saved = json.loads((folder / "selection.json").read_text())
    for sel in saved["targets"].values():  # as a folder made before sae_shift has it
        for k in ("shift_latents", "shift_amounts", "shift_k"):
            sel.pop(k)
    (folder / "selection.json").write_text(json.dumps(saved))
    kept = [x for x in (folder / ROWS).read_text().splitlines()
            if json.loads(x)["method"] != "sae_shift"]
    (folder / ROWS).write_text("\n".join(kept) + "\n")
    summary = fr.run_frontier(FrontierConfig(**{**tiny, "methods": "sae_shift"}, shift_k=4,
                                             out=str(folder)))
    entry = summary["frontier"]["laughter"]["sae_shift"]
    assert [p["strength"] for p in entry["points"]] == [0.0, 2.0] and entry["points"][1]["n"] == 2
    assert "sae" in summary["frontier"]["laughter"]  # the earlier methods kept
    rows = [json.loads(x) for x in (folder / ROWS).read_text().splitlines()]
    assert sum(r["method"] == "sae_shift" for r in rows) == 2
    filled = json.loads((folder / "selection.json").read_text())["targets"]["laughter"]
    assert filled["shift_k"] == 4 and filled["coverage"]["all"] > 0  # written back
    with pytest.raises(ValueError, match="sae_shift edits of 4 latents, not --shift-k 6"):
        fr.run_frontier(FrontierConfig(**{**tiny, "methods": "sae_shift"}, shift_k=6,
                                       out=str(folder)))
    fresh = tmp_path / "fresh"
    fr.run_frontier(FrontierConfig(**{**tiny, "methods": "sae_shift"}, shift_k=4, out=str(fresh)))
    sel = json.loads((fresh / "selection.json").read_text())["targets"]["laughter"]
    assert sel["shift_k"] == 4 and 0 < len(sel["shift_latents"]) <= 4
    with pytest.raises(ValueError, match="sae_shift edits of 4 latents, not --shift-k 6"):
        fr.run_frontier(FrontierConfig(**{**tiny, "methods": "sae_shift"}, shift_k=6,
                                       out=str(fresh)))


def test_resid_norm_on_the_tiny_model(tiny):
    from interp.models.registry import load_backbone
    from steering.experiment import plan_items

    engine = load_backbone(tiny["model"], "cpu")
    items = plan_items(engine, tiny["corpus"], 2, 0)
    norm = fr.resid_norm(engine, "blocks.1.hook_resid_post", items)
    assert np.isfinite(norm) and norm > 0


def test_report_shows_the_frontier(tmp_path):
    from workbench.report import build_report, write_report

    folder = tmp_path / "frontier" / "gender"
    folder.mkdir(parents=True)
    point = {"strength": 8.0, "concept_success": 0.9, "wer_rise": 0.1, "voice_kept": 0.4,
             "length_ok": 1.0, "n": 3}
    (folder / "frontier.json").write_text(json.dumps({"male": {"sae": {
        "score": 0.9, "ci95": [0.8, 0.95], "best_strength": 8.0, "points": [point]}}}))
    (folder / "frontier.html").write_text("<html></html>")
    (folder / "frontier_summary.json").write_text(json.dumps({"wer_decode": "open", "paired": {
        "male": {"sae − diffmeans": {"diff": -0.011, "ci95": [-0.044, 0.013]}}}}))
    report = build_report(tmp_path)
    sec = next(s for s in report.sections if s.title.startswith("Concept–content frontier"))
    assert sec.ran and sec.rows[0].figure == "gender → male: sae"
    paired = next(r for r in sec.rows if r.figure.endswith("(paired)"))
    assert paired.figure == "gender → male: sae − diffmeans (paired)"
    assert paired.ours == "-0.011 [-0.044, +0.013]"
    assert "0.900 [0.80, 0.95] at strength 8" in sec.rows[0].ours and "open decode" in sec.note
    _, page = write_report(report, tmp_path)
    assert 'href="frontier/gender/frontier.html"' in page.read_text()


# -- edits at a word boundary (positions=boundary) -------------------------------------------------


def test_word_start_finds_the_first_token_of_a_word():
    from steering.experiment import word_start

    pieces = ["<|endofprompt|>", "Hi", " there", "Every", " Fri", "day", ",", " Maria", " walks", "."]
    text = "Every Friday, Maria walks."
    assert word_start(pieces, text, 1) == 4 and word_start(pieces, text, 2) == 7
    assert word_start(pieces, text, 3) == 8
    assert word_start(pieces, "Nothing like it.", 1) is None


@pytest.fixture(scope="module")
def guided(tiny_tinycosy, tmp_path_factory):
    """The tiny export with a text-pointer head declared (layer 0, head 0), as --attn-guide
    records it in train.json."""
    import shutil

    src = tiny_tinycosy[0]
    out = tmp_path_factory.mktemp("guided") / "export"
    shutil.copytree(src, out)
    train = json.loads((out / "train.json").read_text())
    train["config"] |= {"attn_guide": 0.2, "attn_guide_layer": 0, "attn_guide_head": 0}
    (out / "train.json").write_text(json.dumps(train))
    return out


def test_boundary_step_is_where_the_unsteered_pointer_reaches_the_tag_word(tiny, guided):
    import random

    from interp.models.evaluate import tag_place, with_laughter
    from interp.models.registry import load_backbone
    from steering.experiment import plan_items, word_start
    from steering.steer import generate_steered

    engine = load_backbone(str(guided), "cpu")
    steerer = Steerer(engine, None, "blocks.1.hook_resid_post", {}, positions="boundary",
                      window=(3, 4), seed=5)
    for item in plan_items(engine, tiny["corpus"], 2, 0):
        start = steerer.boundary_step(item)
        req = engine.request(item.text, item.voice)
        toks = generate_steered(engine, req, [], 5 + item.seed_offset)
        pointer = engine.text_pointer(req.text_ids, req.prompt, toks)
        assert len(pointer) == len(toks) and all(0 <= p < len(req.text_ids) for p in pointer)
        at = tag_place(item.text, random.Random(5 + item.index))
        tagged = with_laughter(item.text, random.Random(5 + item.index)).split()
        assert tagged[at] == "[laughter]"  # the tag sits before word `at`
        first = word_start(engine.token_texts(req.text_ids.tolist()), item.text, at)
        assert engine.tokenizer.decode(req.text_ids[first:].tolist()).split() == \
            item.text.split()[at:]
        reached = [j for j, p in enumerate(pointer) if p >= first]
        if not reached:  # the pointer never got there: the window's own start
            assert start == 3 and steerer.starts[item.index] == -1
        else:  # the edit opens one step before the first frame read at that word
            assert start == max(0, reached[0] - 1) == steerer.starts[item.index]
        # --lead-words 1: at the word before, so never later
        earlier = Steerer(engine, None, "blocks.1.hook_resid_post", {}, positions="boundary",
                          window=(3, 4), seed=5, lead_words=1)
        assert earlier.boundary_step(item) <= start or steerer.starts[item.index] < 0


def test_boundary_frontier_runs_and_an_export_without_a_pointer_is_refused(tiny, guided,
                                                                           tmp_path):
    cfg = tiny | {"model": str(guided), "methods": "diffmeans", "positions": "boundary",
                  "steps": 4}
    summary = fr.run_frontier(FrontierConfig(**cfg, out=str(tmp_path / "b")))
    assert len(summary["boundary_starts"]) == 2  # one start per item, found once
    assert summary["settings"]["positions"] == "boundary"
    with pytest.raises(ValueError, match="attn-guide"):
        fr.run_frontier(FrontierConfig(**tiny | {"methods": "diffmeans", "positions": "boundary"},
                                       out=str(tmp_path / "c")))
