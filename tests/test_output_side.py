"""What a latent does to the sound: the per-code acoustic profile of the codec, the output-side
sentence of a decoder direction, its renderings, and the explainer prompt that carries it."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from autointerp.explain import api_labels
from autointerp.output_side import (
    RENDER_CODES,
    RENDER_HOLD,
    output_sides,
    render_choice,
    write_output_wavs,
)
from autointerp.prompts import Templates, explain_parts
from interp.audio import SAMPLE_RATE
from interp.audio.code_profile import FIELDS, CodeProfile, codebook_profile

N = 40


def synthetic_profile() -> CodeProfile:
    """40 codes: 0-9 silence (floor energy, unvoiced), 10-39 voiced with F0 rising 90→300 Hz at
    the same energy and spectrum."""
    f0 = np.r_[np.zeros(10), np.linspace(90, 300, 30)].astype(np.float32)
    voiced = np.r_[np.zeros(10), np.ones(30)].astype(np.float32)
    energy = np.r_[np.full(10, -30.0), np.full(30, 12.0)].astype(np.float32)
    return CodeProfile(f0, voiced, energy, np.full(N, 600.0, np.float32),
                       np.full(N, -6.0, np.float32), method="synthetic")


class StubBackbone:
    """A backbone whose final norm + speech head is the identity onto N codes and 3 specials:
    a decoder direction *is* its logits."""

    def __init__(self, profile: CodeProfile | None, render: bool = True) -> None:
        self.profile, self._render, self.rendered = profile, render, []

    def logit_lens(self, vectors: torch.Tensor) -> torch.Tensor:
        return torch.cat([vectors, torch.zeros(len(vectors), 3)], 1)

    def code_profile(self) -> CodeProfile | None:
        return self.profile

    def can_render(self) -> bool:
        return self._render

    def render(self, tokens, prompt=None) -> np.ndarray:
        self.rendered.append(list(tokens))
        return np.zeros(len(tokens) * 640, np.float32)


def direction(promote: list[int], suppress: list[int]) -> torch.Tensor:
    v = torch.zeros(1, N)
    v[0, promote], v[0, suppress] = 3.0, -3.0
    return v


def test_codebook_profile_one_finite_row_per_code(tiny_codec):
    prof = codebook_profile(tiny_codec)
    assert prof.n_codes == tiny_codec.n_codes == 64 and prof.method == "codebook"
    for f in FIELDS:
        col = getattr(prof, f)
        assert col.shape == (64,) and np.isfinite(col).all(), f
    assert ((prof.voiced >= 0) & (prof.voiced <= 1)).all()
    assert ((prof.f0_hz == 0) | ((prof.f0_hz > 40) & (prof.f0_hz < 600))).all()
    # the profile's F0 is the code-book's own (k-means means of voiced members' log-F0)
    all_voiced = (tiny_codec.code_f0 > 0).all(1) & (prof.voiced > 0.9)
    assert all_voiced.any()
    geo = np.exp(np.log(tiny_codec.code_f0[all_voiced]).mean(1))
    assert np.allclose(prof.f0_hz[all_voiced], geo, rtol=0.05)
    # silence and speech are told apart: the quietest code is far under the loudest
    assert prof.energy_db.max() - prof.energy_db.min() > 20
    assert len(prof.to_dict()["f0_hz"]) == 64


def test_tinycosy_backbone_offers_its_codec_profile(tiny_tinycosy):
    from interp.models.registry import load_backbone

    bb = load_backbone(str(tiny_tinycosy[0]), "cpu")
    prof = bb.code_profile()
    assert prof is bb.code_profile() and prof.n_codes == bb.model.cfg.speech_codes
    logits = bb.logit_lens(torch.randn(3, bb.d_model))
    sides = output_sides(logits, prof)
    assert len(sides) == 3 and all(s["text"].startswith("promotes ") for s in sides)
    assert all(max(s["codes"]["promoted"]) < prof.n_codes for s in sides)  # no specials


def test_promoting_high_pitch_codes_says_higher_pitch():
    bb = StubBackbone(synthetic_profile())
    high, low = list(range(30, 40)), list(range(10, 20))
    (side,) = output_sides(bb.logit_lens(direction(high, low)), bb.code_profile())
    assert sorted(side["codes"]["promoted"]) == high
    assert side["promoted_profile"]["f0_hz"] > 2 * side["suppressed_profile"]["f0_hz"]
    assert side["deltas"]["f0_pct"] > 100 and side["deltas"]["energy_db"] == 0
    assert "higher-pitched voiced" in side["text"] and "% F0" in side["text"]
    (rev,) = output_sides(bb.logit_lens(direction(low, high)), bb.code_profile())
    assert "lower-pitched" in rev["text"] and rev["deltas"]["f0_pct"] < -50


def test_promoting_quiet_codes_says_silence_or_quieter():
    prof = synthetic_profile()
    bb = StubBackbone(prof)
    (side,) = output_sides(bb.logit_lens(direction(list(range(10)), list(range(20, 30)))), prof)
    assert side["text"].startswith("promotes silence (unvoiced, −42 dB")
    assert side["deltas"]["energy_db"] == pytest.approx(-42) and side["deltas"]["f0_pct"] is None
    # quieter but not silent: voiced codes 12 dB under the others
    loud = CodeProfile(prof.f0_hz, prof.voiced, np.r_[np.full(10, -30.0), np.full(10, 0.0),
                                                      np.full(20, 12.0)].astype(np.float32),
                       prof.centroid_hz, prof.tilt_db_oct)
    (side,) = output_sides(direction(list(range(10, 20)), list(range(20, 30))), loud)
    assert "quieter" in side["text"] and "−12 dB" in side["text"]
    (same,) = output_sides(direction([30, 31], [32, 33]), prof)
    assert "sound much like" in same["text"]


def test_no_profile_no_output_side_and_renderings(tmp_path):
    assert output_sides(torch.zeros(2, N), None) == [None, None]
    assert render_choice(StubBackbone(None), {0: 0.5}, 10) == set()
    assert render_choice(StubBackbone(synthetic_profile(), render=False), {0: 0.5}, 10) == set()
    bb = StubBackbone(synthetic_profile())
    density = {3: 0.1, 5: 0.3, 7: 0.2}
    assert render_choice(bb, density, 2) == {5, 7} and render_choice(bb, density, -1) == {3, 5, 7}
    assert render_choice(bb, density, 0) == set()
    (side,) = output_sides(direction(list(range(30, 40)), list(range(10, 20))), bb.profile)
    write_output_wavs(bb, side, tmp_path, 5)
    assert side["wav"] == {"promoted": "clips/latent_00005_out_promoted.wav",
                           "suppressed": "clips/latent_00005_out_suppressed.wav"}
    assert bb.rendered[0] == [c for c in side["codes"]["promoted"][:RENDER_CODES]
                              for _ in range(RENDER_HOLD)]
    audio, sr = sf.read(tmp_path / side["wav"]["promoted"])
    assert sr == SAMPLE_RATE and len(audio) == RENDER_CODES * RENDER_HOLD * 640  # 0.8 s


def test_explainer_prompt_carries_the_output_side(tmp_path):
    tpl = Templates.load()
    text = {"tokens": [" a", " b"], "acts": [0.0, 1.0], "center": 1}
    exs = [{"modality": "text", "act": 1.0, "text": text, "clip": None}]
    sentence = "promotes higher-pitched voiced frames: +35% F0, +6 dB over the codes it suppresses"
    plain = explain_parts(tpl, "text", exs, tmp_path)
    parts = explain_parts(tpl, "text", exs, tmp_path, sentence)
    assert len(parts) == len(plain) + 1 and parts[-1] == plain[-1]  # the reply format stays last
    assert f"it {sentence}." in parts[-2]["text"] and "decoder direction" in parts[-2]["text"]

    class Client:  # collects the questions api_labels asks
        cfg = type("Cfg", (), {"model": "fake"})

        def chat(self, system, parts):
            return parts

        def ask_many(self, items, desc):
            self.items = items
            return {lat: ("a label", None) for lat, _, _ in items}

    client = Client()
    ev = {"top": exs, "quantiles": [], "output_side": {"text": sentence}}
    labels = api_labels(client, tpl, {7: ev, 8: {**ev, "output_side": None}}, ["text"] * 9,
                        tmp_path)
    asked = {lat: " ".join(p.get("text", "") for p in parts) for lat, parts, _ in client.items}
    assert sentence in asked[7] and sentence not in asked[8] and labels[7].label == "a label"


def test_intervention_deltas_and_sentence():
    from autointerp.intervention import compare, describe

    base = [{"median_f0_hz": 100.0, "duration_s": 2.0, "voiced_duration_s": 1.5, "laughter": 0.1,
             "wer": 0.2},
            {"median_f0_hz": 200.0, "duration_s": 3.0, "voiced_duration_s": 2.0, "laughter": 0.0,
             "wer": 0.0}]
    steered = [{"median_f0_hz": 120.0, "duration_s": 1.5, "voiced_duration_s": 1.0,
                "laughter": 0.3, "wer": 0.5},
               {"median_f0_hz": None, "duration_s": 2.5, "voiced_duration_s": None,
                "laughter": 0.2, "wer": 0.1}]
    d = compare(base, steered)
    assert d == {"f0_pct": 20.0, "duration_s": -0.5, "voiced_duration_s": -0.5, "laughter": 0.2,
                 "wer_points": 20.0}
    assert describe(d, 4.0, 2) == ("turned up alone (+4× its max activation, 2 sentences): "
                                   "F0 +20%, duration −0.50 s, laughter +0.20, WER +20 points")
    none = {k: None for k in d}
    assert describe(none, 4.0, 1).endswith("1 sentence): nothing measurable")


def test_intervener_steers_one_latent_against_the_same_seed(tiny_tinycosy, tiny_corpus):
    """Strength 0 speaks exactly the unsteered audio (same seed, nothing added); a large push
    along a decoder row changes what is generated."""
    from types import SimpleNamespace

    from autointerp.intervention import Intervener
    from interp.models.registry import load_backbone

    bb = load_backbone(str(tiny_tinycosy[0]), "cpu")
    sae = SimpleNamespace(W_dec=torch.nn.functional.normalize(
        torch.randn(4, bb.d_model, generator=torch.Generator().manual_seed(0)), dim=1))
    hook = f"blocks.{bb.n_layers - 1}.hook_resid_post"
    zero = Intervener(bb, sae, hook, str(tiny_corpus), 1, 0.0)
    same = zero.score(2, 1.0)
    assert same["unsteered"] == same["steered"] and same["n_sentences"] == 1
    assert all(v in (0, None) for v in same["deltas"].values())
    push = Intervener(bb, sae, hook, str(tiny_corpus), 1, 50.0).score(2, 1.0)
    assert push["steered"] != push["unsteered"] and push["text"].startswith("turned up alone (+50×")
    assert push["hook"] == hook and set(push["deltas"]) == {"f0_pct", "duration_s",
                                                           "voiced_duration_s", "laughter",
                                                           "wer_points"}
