"""Latents chosen by their measured output effect (steering.calibrate, the `sae_effect` method)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from steering import calibrate as cal
from steering.select import TargetSelection


def _sel(unit: float = 2.0) -> TargetSelection:
    return TargetSelection("laughter", [0, 1], [1.0, 1.0], [1.0, 0.5], unit, [0.0] * 4,
                           [2.0, 0, 0, 0], [2], [1.0], [0, 1.0, 0, 0], [1, 1], "contrastive",
                           [0, 1, 2, 3])


def _rows() -> list[dict]:
    """Two items; latent 2 makes laughter without losing words, latent 0 makes laughter and
    babble, latent 1 and 3 do nothing."""
    rows = [{"item": i, "method": "none", "target": "-", "voice_gender": "female",
             "laughter": 0.1, "wer": 0.1} for i in (0, 1)]
    effect = {0: (0.9, 0.9), 1: (0.1, 0.1), 2: (0.8, 0.15), 3: (0.2, 0.1)}
    for latent, (p, w) in effect.items():
        rows += [{"item": i, "method": "sae", "target": f"laughter@{latent}",
                  "voice_gender": "female", "laughter": p, "wer": w} for i in (0, 1)]
    return rows


def test_rank_scores_each_latent_by_success_and_content_kept():
    ranked = cal.rank(_rows(), {"laughter": _sel()})["laughter"]
    assert [c["latent"] for c in ranked][:2] == [2, 0]  # laughter and words beats babble
    best = ranked[0]
    assert best["success"] == 1.0 and best["success_gain"] == 1.0 and best["n"] == 2
    assert best["wer_rise"] == pytest.approx(0.05)
    assert {c["latent"]: c["success_gain"] for c in ranked}[1] == 0.0


def test_effect_selection_keeps_latents_that_moved_the_concept_at_the_unit_norm():
    sel = _sel(unit=3.0)
    w = np.eye(4)
    ranked = cal.rank(_rows(), {"laughter": sel})["laughter"]
    out = cal.effect_selection(sel, ranked, w, k=3)
    # 2 reaches laughter keeping the words, 0 reaches it babbling, 3 moves P(laughter) a little
    # (a graded effect), 1 not at all
    assert out.effect_latents == [2, 0, 3]
    edit = np.array(out.effect_amounts) @ w[out.effect_latents]
    assert np.linalg.norm(edit) == pytest.approx(3.0)
    assert out.latents == sel.latents  # the contrastive choice is kept beside it
    # nothing moved: the best candidate alone, so the method still runs (and scores low)
    flat = [{**r, "laughter": 0.1} for r in _rows()]
    out = cal.effect_selection(sel, cal.rank(flat, {"laughter": sel})["laughter"], w, k=3)
    assert len(out.effect_latents) == 1


def test_sae_effect_without_calibration_says_how():
    from interp.hooks import all_positions
    from steering.methods import edit_interventions

    with pytest.raises(ValueError, match="steering.calibrate"):
        edit_interventions(None, "blocks.0.hook_resid_post", _sel(), "sae_effect", 1.0,
                           all_positions())


def test_frontier_with_sae_effect_on_the_tiny_model(tmp_path, tiny_tinycosy, tiny_sae,
                                                   tiny_store, tiny_corpus):
    """Calibration on items after the evaluated ones, then sae_effect on the frontier; a rerun
    makes nothing new, other calibration settings are refused."""
    from steering import frontier as fr
    from steering.frontier import FrontierConfig

    cfg = FrontierConfig(layer=1, model=str(tiny_tinycosy[0]), sae=str(tiny_sae),
                         store=str(tiny_store), corpus=str(tiny_corpus), k=2, max_positions=400,
                         concept="laughter", n=2, strengths="2", bootstrap=50,
                         methods="sae,sae_effect", calibrate_candidates=3, calibrate_items=2,
                         batch_size=4, out=str(tmp_path / "f"))
    summary = fr.run_frontier(cfg)
    effect = json.loads((tmp_path / "f" / cal.FOLDER / cal.EFFECT).read_text())
    t = effect["targets"]["laughter"]
    assert len(t["ranked"]) == 3 and 1 <= len(t["chosen"]) <= 2
    assert set(t["chosen"]) <= {c["latent"] for c in t["ranked"]}
    assert summary["effect_latents"]["laughter"] == t["chosen"]
    assert set(summary["frontier"]["laughter"]) == {"sae", "sae_effect"}
    cal_rows = [json.loads(x) for x in
                (tmp_path / "f" / cal.FOLDER / "rows.jsonl").read_text().splitlines()]
    eval_items = {r["item"] for r in map(json.loads, (tmp_path / "f" / "rows.jsonl")
                                         .read_text().splitlines())}
    assert eval_items == {0, 1} and {r["item"] for r in cal_rows} == {2, 3}
    assert len(cal_rows) == 2 + 3 * 2
    fr.run_frontier(cfg)  # resumes: nothing new
    assert len((tmp_path / "f" / cal.FOLDER / "rows.jsonl").read_text().splitlines()) == 8
    from dataclasses import replace

    with pytest.raises(ValueError, match="calibration made with"):
        fr.run_frontier(replace(cfg, calibrate_strength=3.0))


def test_a_flat_success_is_ranked_by_the_graded_move():
    """Gender: no single latent flips P(male) past 0.5, but one moves its log-odds; it ranks
    first and is the one kept."""
    rows = [{"item": i, "method": "none", "target": "-", "voice_gender": "female",
             "p_male": 1e-4, "wer": 0.1} for i in (0, 1)]
    for latent, p in {5: 1e-4, 6: 0.01, 7: 0.2}.items():
        rows += [{"item": i, "method": "sae", "target": f"male@{latent}",
                  "voice_gender": "female", "p_male": p, "wer": 0.1 if latent != 7 else 1.2}
                 for i in (0, 1)]
    sel = replace(_sel(), target="male")
    ranked = cal.rank(rows, {"male": sel})["male"]
    assert [c["latent"] for c in ranked] == [6, 5, 7]  # 7 moved most but lost every word
    assert ranked[0]["graded_gain"] > 4 and ranked[2]["effect"] == 0
    assert cal.effect_selection(sel, ranked, np.eye(8), k=4).effect_latents == [6]
