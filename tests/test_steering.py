"""SAE-latent steering: exact edits, zero-strength identity, selection on a planted setup."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp.models.registry import load_backbone
from sae.io import load_sae
from steering.select import GroupStats, group_stats, label_candidates, select_target
from steering.steer import (
    LatentEdit,
    LatentEditor,
    _subset_encoder,
    direction_intervention,
    edit_codes,
    edit_residual,
    generate_steered,
    position_mask,
    sae_intervention,
)


@pytest.fixture(scope="module")
def sae(tiny_sae):
    return load_sae(tiny_sae)


@pytest.fixture(scope="module")
def engine(tiny_tinycosy, tiny_codec_dir):
    return load_backbone(str(tiny_tinycosy[0]), "cpu", codec=str(tiny_codec_dir))


@pytest.mark.parametrize("mode", ["add", "clamp", "scale", "set", "shift"])
def test_edit_changes_only_chosen_latents_and_keeps_error(sae, mode):
    torch.manual_seed(0)
    x = torch.randn(3, 7, sae.cfg.d_in) * 2
    edit = LatentEdit((2, 9, 40), (1.5, 0.7, 3.0), mode)
    assert _subset_encoder(sae, [1]) is not None
    z = sae.encode(x)
    z2 = edit_codes(z, edit, 2.0)
    other = torch.ones(z.shape[-1], dtype=torch.bool)
    other[list(edit.latents)] = False
    assert torch.equal(z2[..., other], z[..., other])
    assert not torch.equal(z2[..., ~other], z[..., ~other])
    x2 = edit_residual(sae, x, edit, 2.0)
    fast = LatentEditor(sae, edit, 2.0).encode  # only the chosen latents, JumpReLU fast path
    torch.testing.assert_close(fast(x), z[..., list(edit.latents)], atol=1e-5, rtol=0)
    # the SAE's error term x - decode(z) is kept: x2 = decode(z') + error
    torch.testing.assert_close(x2 - sae.decode(z2), x - sae.decode(z), atol=1e-5, rtol=0)


def test_reencoding_leaves_other_latents_unchanged(tiny_sae):
    """With an SAE whose live decoder rows are orthonormal and whose encoder is their transpose,
    encoding the edited residual gives back every other latent exactly."""
    sae = load_sae(tiny_sae)
    d, n_live = sae.cfg.d_in, sae.cfg.d_in // 2
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        sae.W_dec.zero_()
        sae.W_dec[:n_live] = q[:n_live]
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.threshold.fill_(1e-3)
    x = torch.randn(50, d)
    edit = LatentEdit((1, 4), (2.0, 3.0), "add")
    z, z_new = sae.encode(x), sae.encode(edit_residual(sae, x, edit, 1.0))
    other = [i for i in range(n_live) if i not in edit.latents]
    torch.testing.assert_close(z_new[:, other], z[:, other], atol=1e-5, rtol=0)
    assert (z_new[:, [1, 4]] > 0).all()


def test_zero_strength_reproduces_generation(engine, sae):
    req = engine.request("the cat sat on the mat", sorted(engine.prompts)[0])
    plain = generate_steered(engine, req, [], seed=3)
    mask = position_mask("speech", req.modality)
    hook = "blocks.1.hook_resid_post"
    vec = torch.randn(sae.cfg.d_in)
    for mode in ("add", "clamp", "scale", "shift"):
        ivs = [sae_intervention(sae, hook, LatentEdit((0, 5, 7), (1.0, -2.0, 3.0), mode), 0.0,
                                mask)]
        assert generate_steered(engine, req, ivs, seed=3) == plain
    assert generate_steered(engine, req, [direction_intervention(hook, 0 * vec, mask)],
                            seed=3) == plain
    strong = [direction_intervention(hook, 50 * vec / vec.norm(), mask)]
    assert generate_steered(engine, req, strong, seed=3) != plain


def _stats(mean_z: np.ndarray, mean_x: np.ndarray, active: np.ndarray, n: int = 100
           ) -> GroupStats:
    return GroupStats(n, mean_x * n, mean_z * n, active)


def test_selection_finds_planted_latents(tmp_path):
    rng = np.random.default_rng(0)
    d, d_sae = 16, 40
    w = rng.standard_normal((d_sae, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    w[3] = np.linalg.svd(w[[7, 11]])[2][-1]  # a decoy orthogonal to the planted directions
    fake = type("FakeSAE", (), {"W_dec": torch.tensor(w, dtype=torch.float32)})()
    base = rng.uniform(0, 0.2, d_sae)
    za, zb = base.copy(), base.copy()
    za[[7, 11, 3]] += [2.0, 1.0, 3.0]  # 3 rises with the concept but carries none of it
    xb = rng.standard_normal(d)
    xa = xb + 2.0 * w[7] + 1.0 * w[11]
    active = (rng.uniform(0, 1, d_sae) * 100).astype(int) + 1
    stats = {"a": _stats(za, xa, active), "b": _stats(zb, xb, active)}
    sel = select_target(fake, stats, "laughter", ("a", "b"), k=2)
    assert set(sel.latents) == {7, 11} and sel.source == "contrastive"
    unit = np.linalg.norm(xa - xb)
    assert np.isclose(sel.unit, unit)
    assert np.isclose(np.linalg.norm(sel.decoder), unit)
    assert np.isclose(np.linalg.norm(sel.random_direction), unit)
    assert not set(sel.random_latents) & {7, 11}
    assert np.allclose(sel.diffmeans, xa - xb)
    # label search restricts the candidates
    path = tmp_path / "latents.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"latent": 11, "label": "laughter bursts", "modality": "audio", "scores": {"auroc": 0.9}},
        {"latent": 7, "label": "vowel onsets", "modality": "audio", "scores": {"auroc": 0.9}},
        {"latent": 3, "label": "laugh-like noise", "modality": "audio", "scores": {"auroc": 0.4}},
    ]))
    cands = label_candidates(path, "laughter", min_auroc=0.5)
    assert cands == {11}
    sel = select_target(fake, stats, "laughter", ("a", "b"), k=2, candidates=cands)
    assert sel.latents == [11] and sel.source == "label"
    assert label_candidates(tmp_path / "missing.jsonl", "laughter") is None


def test_shift_raises_and_lowers_but_never_below_zero():
    z = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    edit = LatentEdit((1, 2, 3), (1.0, -1.0, -4.0), "shift")
    assert edit_codes(z, edit, 2.0).tolist() == [[0.0, 3.0, 3.0, 0.0]]  # 2 − 8 stops at 0
    assert torch.equal(edit_codes(z, edit, 0.0), z)


def test_shift_selection_takes_both_signs_at_the_unit_norm():
    """Latents that rise with the concept and latents that fall with it (and carry it the other
    way) are both shifted; the amounts decode to an edit of norm ‖Δμ‖ per unit of strength."""
    rng = np.random.default_rng(0)
    d, d_sae = 16, 40
    w = rng.standard_normal((d_sae, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    fake = type("FakeSAE", (), {"W_dec": torch.tensor(w, dtype=torch.float32)})()
    zb = rng.uniform(0.5, 1.0, d_sae)
    za = zb.copy()
    za[[7, 11]] += [2.0, 1.0]  # the target group has more of 7 and 11 …
    za[[20]] -= [0.5]  # … and less of 20
    xa, xb = za @ w, zb @ w
    active = np.full(d_sae, 50)
    stats = {"a": _stats(za, xa, active), "b": _stats(zb, xb, active)}
    sel = select_target(fake, stats, "male", ("a", "b"), k=2, shift_k=3)
    assert set(sel.latents) == {7, 11}  # the one-sided edit only raises
    assert set(sel.shift_latents) == {7, 11, 20} and sel.shift_k == 3
    amounts = dict(zip(sel.shift_latents, sel.shift_amounts, strict=True))
    assert amounts[7] > amounts[11] > 0 > amounts[20]
    edit = np.array(sel.shift_amounts) @ w[sel.shift_latents]
    assert np.isclose(np.linalg.norm(edit), sel.unit)
    # here Δμ is exactly those three latents' change: the edit is the difference of means
    assert np.allclose(edit, xa - xb)
    cov = sel.coverage  # the top 1, 2 latents carry part of Δμ, all three (and "all") all of it
    assert list(cov) == ["1", "2", "all"] and cov["1"] < cov["2"] < 1.0
    assert cov["all"] == pytest.approx(1.0, abs=1e-3)


def test_sae_shift_edits_in_shift_mode_whatever_the_run_mode(sae):
    from steering.methods import edit_interventions
    from steering.select import TargetSelection

    sel = TargetSelection("male", [0], [1.0], [1.0], 2.0, [0.0] * sae.cfg.d_in,
                          [0.0] * sae.cfg.d_in, [1], [1.0], [0.0] * sae.cfg.d_in, [1, 1],
                          "contrastive", shift_latents=[0, 3], shift_amounts=[1.0, -2.0],
                          shift_k=2)
    mask = position_mask("all", [])
    (iv,) = edit_interventions(sae, "h", sel, "sae_shift", 2.0, mask, mode="clamp")
    assert iv.fn.edit.mode == "shift" and iv.fn.edit.latents == (0, 3)
    (iv,) = edit_interventions(sae, "h", sel, "sae", 2.0, mask, mode="clamp")
    assert iv.fn.edit.mode == "clamp"
    from dataclasses import replace
    with pytest.raises(ValueError, match="saved before sae_shift"):
        edit_interventions(sae, "h", replace(sel, shift_latents=[], shift_amounts=[],
                                             shift_k=0), "sae_shift", 2.0, mask)


def test_group_stats_on_store(sae, tiny_store, tiny_corpus):
    from interp.store.reader import ActivationStore

    stats = group_stats(sae, ActivationStore(tiny_store, 1), tiny_corpus, "gender", 500)
    assert set(stats) == {"male", "female"}
    assert all(0 < s.n <= 500 for s in stats.values())
    assert stats["male"].mean_z.shape == (sae.cfg.d_sae,)
