"""SAE-targeted steering (steering.targeted, the `sae_ts` method)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from steering import targeted as ts
from steering.select import TargetSelection


def _sel(unit: float = 2.0, d: int = 6) -> TargetSelection:
    dmu = [1.0, 1.0] + [0.0] * (d - 2)
    return TargetSelection("laughter", [0, 1], [1.0, 1.0], [1.0, 0.5], unit, dmu, dmu, [2],
                           [1.0], [0.0] * d, [1, 1], "contrastive", [0, 1, 2, 3])


def test_probes_are_diffmeans_candidates_and_random_at_the_probe_norm():
    sel, w = _sel(), np.eye(8)[:, :6]
    v = ts.probes(sel, w, ts.TargetedConfig(candidates=3, random=2, strength=4.0))
    assert v.shape == (1 + 3 + 2, 6)
    assert np.allclose(np.linalg.norm(v, axis=1), 4.0 * sel.unit)
    assert np.allclose(v[1:4] / 8.0, w[[0, 1, 2]])  # the candidates' decoder directions
    again = ts.probes(sel, w, ts.TargetedConfig(candidates=3, random=2, strength=4.0))
    assert np.array_equal(v, again)  # seeded


def test_solve_finds_the_vector_that_moves_the_targets_and_not_the_rest():
    """A linear world: direction e0 raises latent 0 and latent 5 (off target), e1 raises latent
    1, e2 raises latent 5 negatively. Diff-means (e0+e1) leaks into latent 5; the solved vector
    cancels it with e2."""
    d_model, d_sae = 6, 8
    A = np.zeros((d_model, d_sae))  # effect of a unit vector along each residual axis
    A[0, 0], A[0, 5] = 1.0, 1.0
    A[1, 1] = 1.0
    A[2, 5] = -1.0
    sel = _sel(unit=2.0)
    rng = np.random.default_rng(0)
    vecs = np.vstack([np.asarray(sel.diffmeans), rng.standard_normal((12, d_model))])
    effects = vecs @ A
    v, pred = ts.solve(effects, vecs, sel, ridge=1e-6)
    assert np.linalg.norm(v) == pytest.approx(sel.unit)
    e = v @ A
    assert e[0] > 0.5 and e[1] > 0.5 and abs(e[5]) < 1e-3  # the leak into latent 5 cancelled
    assert pred["sae_ts"]["off_target_rms"] < 1e-3 < pred["diffmeans"]["off_target_rms"]
    assert pred["sae_ts"]["in_probe_span"] == pytest.approx(1.0, abs=1e-6)


def test_sae_ts_without_a_fit_says_how():
    from interp.hooks import all_positions
    from steering.methods import edit_interventions

    with pytest.raises(ValueError, match="steering.targeted"):
        edit_interventions(None, "blocks.0.hook_resid_post", _sel(), "sae_ts", 1.0,
                           all_positions())


def test_frontier_with_sae_ts_on_the_tiny_model(tmp_path, tiny_tinycosy, tiny_sae, tiny_store,
                                               tiny_corpus):
    """Probes generated on items after the evaluated ones and read back through the SAE; the
    solved vector steers on the frontier; a rerun makes nothing new; other settings refused."""
    from steering import frontier as fr
    from steering.frontier import FrontierConfig

    cfg = FrontierConfig(layer=1, model=str(tiny_tinycosy[0]), sae=str(tiny_sae),
                         store=str(tiny_store), corpus=str(tiny_corpus), k=2, max_positions=400,
                         concept="laughter", n=2, strengths="2", bootstrap=50,
                         methods="diffmeans,sae_ts,diffmeans_clamp", ts_candidates=2,
                         ts_random=2, ts_items=2,
                         batch_size=4, out=str(tmp_path / "f"))
    summary = fr.run_frontier(cfg)
    folder = tmp_path / "f" / ts.FOLDER
    fit = json.loads((folder / ts.RESULT).read_text())["targets"]["laughter"]
    assert fit["probes"] == {"diffmeans": 1, "candidates": 2, "random": 2}
    assert len(fit["items"]) == 2 and min(fit["items"]) >= 2  # after the evaluated items
    sel = json.loads((tmp_path / "f" / "selection.json").read_text())["targets"]["laughter"]
    assert np.linalg.norm(fit["vector"]) == pytest.approx(sel["unit"], rel=1e-4)
    assert set(summary["frontier"]["laughter"]) == {"diffmeans", "sae_ts", "diffmeans_clamp"}
    made = sorted(p.name for p in folder.glob("probe_*.npy"))
    assert len(made) == 1 + 5 and np.load(folder / made[0]).shape[0] == 2
    stamp = {p: p.stat().st_mtime_ns for p in folder.glob("probe_*.npy")}
    fr.run_frontier(cfg)  # resumes: no probe is generated again
    assert {p: p.stat().st_mtime_ns for p in folder.glob("probe_*.npy")} == stamp
    with pytest.raises(ValueError, match="other settings"):
        fr.run_frontier(replace(cfg, ts_strength=3.0))
    # a folder selected before the clamp existed: its floors are computed again, the same
    path = tmp_path / "f" / "selection.json"
    saved = json.loads(path.read_text())
    floor = saved["targets"]["laughter"].pop("floor")
    path.write_text(json.dumps(saved))
    again = fr.run_frontier(replace(cfg, strengths="2,3"))
    assert [p["strength"] for p in again["frontier"]["laughter"]["diffmeans_clamp"]["points"]
            ] == [0, 2, 3]
    from steering.run import prepare, with_calibration

    setup = with_calibration(prepare(cfg), cfg, ("diffmeans_clamp",))
    assert setup.selection["laughter"].floor == pytest.approx(floor)


def test_read_back_encodes_the_generated_positions_of_the_unsteered_model(
        tiny_tinycosy, tiny_sae, tiny_corpus):
    import torch

    from interp.hooks.capture import capture
    from interp.models.registry import load_backbone
    from sae.io import load_sae
    from steering.experiment import Steerer, plan_items

    engine = load_backbone(str(tiny_tinycosy[0]), "cpu")
    hook = "blocks.1.hook_resid_post"
    sae = load_sae(tiny_sae, engine, hook)
    items = plan_items(engine, str(tiny_corpus), 2, 0)
    tokens = [[3, 5, 7, 9], [11, 2]]
    got = ts.read_back(Steerer(engine, sae, hook, {}), items, tokens)
    for i, (it, toks) in enumerate(zip(items, tokens, strict=True)):
        req = engine.request(it.text, it.voice)
        with capture(engine.model, [hook]) as cache:
            engine.teacher_forced(req.text_ids, req.prompt, torch.tensor(toks))
        x = cache[hook][0][-len(toks):]  # the positions reading the generated tokens
        assert np.allclose(got[i], sae.encode(x).mean(0).detach().numpy(), atol=1e-5)
    assert not np.allclose(got[0], got[1])
