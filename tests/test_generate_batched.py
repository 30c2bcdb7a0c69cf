"""Batched KV-cached generation: every row equal to its unbatched generation — greedy and sampled
(per-row seeds), with per-row stops, and steered (per-row strengths, SAE-latent and direction
edits, mixed methods in one batch)."""

from __future__ import annotations

import pytest
import torch
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

from interp.hooks import Intervention, RowPositions, intervene, intervene_rows
from interp.models.backbone import Request, SpeechLMBackbone
from interp.models.generate import (
    SamplingConfig,
    can_generate_batch,
    generate_batch,
    generate_tokens,
)
from interp.models.registry import load_backbone
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from steering.steer import (
    LatentEdit,
    LatentEditor,
    direction_intervention,
    generate_steered,
    generate_steered_batch,
    position_mask,
    sae_intervention,
)

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def model() -> TinyCosy:
    """A random 2-layer TinyCosy with peaked distributions (weights × 3)."""
    torch.manual_seed(0)
    m = TinyCosy(TinyCosyConfig(n_layers=2, hidden=32, n_heads=4, n_kv_heads=2, mlp=64,
                                text_vocab=100, speech_codes=64, max_positions=512)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3)
    return m


def _rows(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """Texts of 2–8 ids, prompts of 0–11 tokens, n_text 1–5: prefixes of different lengths."""
    g = torch.Generator().manual_seed(seed)

    def r(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=g))

    return [(torch.randint(0, 100, (r(2, 9),), generator=g),
             torch.randint(0, 64, (r(0, 12),), generator=g), r(1, 6)) for _ in range(n)]


@pytest.mark.parametrize("top_k", [1, 25])
@pytest.mark.parametrize("ratios", [(4.0, 12.0), (6.0, 6.0), (0.0, 3.0)])
def test_rows_equal_unbatched(model, top_k, ratios):
    """Greedy and sampled (own seed per row): each row is exactly its unbatched generation,
    whether it stops on eos, at its maximum, or at once."""
    rows = _rows(6)
    cfgs = [SamplingConfig(top_k=top_k, seed=s, min_ratio=ratios[0], max_ratio=ratios[1])
            for s in range(6)]
    alone = [generate_tokens(model, t, p, n, c) for (t, p, n), c in zip(rows, cfgs, strict=True)]
    assert generate_batch(model, rows, cfgs) == alone
    assert len({len(a) for a in alone}) > 1  # rows stopped at different steps


def test_rows_independent_of_batchmates(model):
    rows, cfgs = _rows(5, seed=2), [SamplingConfig(seed=10 + i, min_ratio=3.0) for i in range(5)]
    out = generate_batch(model, rows, cfgs)
    order = [3, 0, 4, 2, 1]
    assert generate_batch(model, [rows[i] for i in order], [cfgs[i] for i in order]) == [
        out[i] for i in order]
    assert generate_batch(model, rows[1:2], cfgs[1:2]) == out[1:2]
    assert generate_batch(model, [], cfgs[:0]) == []
    assert can_generate_batch(model)


def test_one_config_for_all_rows(model):
    rows = _rows(3, seed=3)
    cfg = SamplingConfig(seed=4, min_ratio=2.0)
    assert generate_batch(model, rows, cfg) == [generate_tokens(model, *r, cfg) for r in rows]
    with pytest.raises(ValueError, match="one per row"):
        generate_batch(model, rows, [cfg, cfg])


def test_a_row_too_long_is_refused_in_one_line(model):
    rows = _rows(2) + [(torch.zeros(400, dtype=torch.long), torch.zeros(100, dtype=torch.long),
                        50)]
    with pytest.raises(ValueError, match="text too long for the model"):
        generate_batch(model, rows)


def test_observer_sees_each_rows_positions(model):
    rows = [(torch.tensor([1, 2]), torch.tensor([], dtype=torch.long), 1),
            (torch.tensor([1, 2, 3]), torch.tensor([5, 6]), 2)]  # prefixes of 4 and 7
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    cfgs = [SamplingConfig(top_k=1, min_ratio=2.0, max_ratio=2.0)] * 2  # 2 and 4 tokens
    out = generate_batch(model, rows, cfgs, observer=lambda p, r: seen.append((p, r)))
    assert [len(o) for o in out] == [2, 4]
    assert seen[0][0].tolist() == [[0, 1, 2, 3, -1, -1, -1], [0, 1, 2, 3, 4, 5, 6]]
    assert seen[1][0].tolist() == [[4], [7]] and seen[1][1].tolist() == [0, 1]
    # row 0 is done after its 2nd token: the last passes hold row 1 alone
    assert [(p.tolist(), r.tolist()) for p, r in seen[2:]] == [([[8]], [1]), ([[9]], [1])]


# -- steering, per row -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_tinycosy, tiny_codec_dir):
    return load_backbone(str(tiny_tinycosy[0]), "cpu", codec=str(tiny_codec_dir))


@pytest.fixture(scope="module")
def requests_(engine) -> list[Request]:
    voices = sorted(engine.prompts)
    texts = ["the cat sat on the mat", "hello there", "a much longer sentence to speak out loud",
             "yes", "where is the station today"]
    return [engine.request(t, voices[i % len(voices)]) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def sae(engine):
    """A random JumpReLU SAE on the tiny model's residual (d_sae 64)."""
    torch.manual_seed(0)
    d = engine.d_model
    s = JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=64))
    with torch.no_grad():
        for p in s.parameters():
            p.normal_(0, d ** -0.5)
        s.threshold.fill_(0.05)
    return s


SAMPLING = SamplingConfig(min_ratio=2.0, max_ratio=6.0)


def _alone(engine, reqs, ivs, seeds, sampling=SAMPLING):
    return [generate_steered(engine, r, iv, s, sampling)
            for r, iv, s in zip(reqs, ivs, seeds, strict=True)]


def test_backbone_batch_equals_generate(engine, requests_):
    assert engine.can_batch_generate()
    for top_k in (1, 25):
        cfgs = [SamplingConfig(top_k=top_k, seed=7 + i, min_ratio=2.0, max_ratio=6.0)
                for i in range(len(requests_))]
        alone = [engine.generate(r.text_ids, r.prompt, r.n_text, c)
                 for r, c in zip(requests_, cfgs, strict=True)]
        assert engine.generate_batch(requests_, cfgs) == alone


def test_direction_per_row_strength_equals_unbatched(engine, requests_):
    """A fixed random direction, one strength per row (0 = unsteered): each row's tokens are
    those of its unbatched steered run."""
    vec = torch.randn(engine.d_model, generator=torch.Generator().manual_seed(5))
    vec = 8 * vec / vec.norm()
    strengths = [0.0, 1.0, 3.0, -2.0, 6.0]
    ivs = [[direction_intervention(HOOK, s * vec, position_mask("speech", r.modality))]
           for s, r in zip(strengths, requests_, strict=True)]
    seeds = [3, 3, 4, 5, 6]
    alone = _alone(engine, requests_, ivs, seeds)
    assert generate_steered_batch(engine, requests_, ivs, seeds, SAMPLING) == alone
    plain = _alone(engine, requests_, [[]] * 5, seeds)
    assert alone[0] == plain[0] and alone[4] != plain[4]  # strength 0 is plain; 6 steers


@pytest.mark.parametrize("mode", ["clamp", "scale", "add", "set"])
def test_sae_edit_per_row_strength_equals_unbatched(engine, requests_, sae, mode):
    edit = LatentEdit((1, 7, 30), (2.0, 1.5, 3.0), mode)
    strengths = [0.0, 2.0, 4.0, 1.0, 8.0]
    ivs = [[sae_intervention(sae, HOOK, edit, s, position_mask("speech", r.modality))]
           for s, r in zip(strengths, requests_, strict=True)]
    seeds = list(range(5))
    alone = _alone(engine, requests_, ivs, seeds)
    assert generate_steered_batch(engine, requests_, ivs, seeds, SAMPLING) == alone
    plain = _alone(engine, requests_, [[]] * 5, seeds)
    assert sum(a != b for a, b in zip(alone, plain, strict=True)) >= 2  # the edits act


def test_mixed_methods_in_one_batch(engine, requests_, sae):
    """Unsteered, SAE-latent, direction, two hooks at once, a window of generated steps, an edit
    that cannot stack: all in one batch, each row as alone (greedy and sampled)."""
    g = torch.Generator().manual_seed(9)
    vec = 6 * torch.nn.functional.normalize(torch.randn(engine.d_model, generator=g), dim=0)
    r = requests_
    ivs = [
        [],
        [sae_intervention(sae, HOOK, LatentEdit((2, 3), (3.0, 3.0)), 2.0,
                          position_mask("speech", r[1].modality))],
        [direction_intervention(HOOK, vec, position_mask("generated", r[2].modality))],
        [direction_intervention("blocks.0.hook_resid_pre", vec,
                                position_mask("all", r[3].modality)),
         Intervention("blocks.1.hook_mlp_out", lambda x: 0.5 * x,
                      position_mask("window", r[3].modality, 2, 3))],
        [direction_intervention("blocks.0.hook_resid_mid", -vec,
                                position_mask("speech", r[4].modality)),
         sae_intervention(sae, HOOK, LatentEdit((2, 3), (3.0, 3.0)), 5.0,
                          position_mask("speech", r[4].modality))],
    ]
    for top_k in (1, 25):
        sampling = SamplingConfig(top_k=top_k, min_ratio=2.0, max_ratio=6.0)
        seeds = [11, 12, 13, 14, 15]
        alone = _alone(engine, r, ivs, seeds, sampling)
        assert generate_steered_batch(engine, r, ivs, seeds, sampling) == alone
        plain = _alone(engine, r, [[]] * 5, seeds, sampling)
        assert [a != b for a, b in zip(alone, plain, strict=True)] == [False] + [True] * 4


def test_fallback_one_by_one(engine, requests_, monkeypatch):
    """A backbone that cannot batch, or has no generate_batch: the same tokens, one by one."""
    vec = torch.randn(engine.d_model, generator=torch.Generator().manual_seed(2))
    ivs = [[direction_intervention(HOOK, s * vec)] for s in (0.0, 4.0, 8.0, 1.0, 2.0)]
    seeds = [1, 2, 3, 4, 5]
    want = _alone(engine, requests_, ivs, seeds)
    monkeypatch.setattr(SpeechLMBackbone, "can_batch_generate", lambda self: False)
    assert generate_steered_batch(engine, requests_, ivs, seeds, SAMPLING) == want
    monkeypatch.undo()

    class Plain:  # a Backbone without generate_batch
        model = engine.model

        def generate(self, *args):
            return engine.generate(*args)

    assert generate_steered_batch(Plain(), requests_, ivs, seeds, SAMPLING) == want
    with pytest.raises(ValueError, match="one of each per request"):
        generate_steered_batch(engine, requests_, ivs[:2], seeds, SAMPLING)


def test_stacked_latent_editor_is_each_row_alone(sae):
    x = torch.randn(4, 6, sae.cfg.d_in, generator=torch.Generator().manual_seed(0)) * 2
    for mode in ("add", "clamp", "scale", "set"):
        edit = LatentEdit((0, 5, 9), (1.0, 2.5, 0.7), mode)
        eds = [LatentEditor(sae, edit, s) for s in (0.0, 0.3, 1.7, 4.0)]
        assert len({e.stack_key for e in eds}) == 1
        stacked = eds[0].stack(eds)(x)
        for i, e in enumerate(eds):
            torch.testing.assert_close(stacked[i : i + 1], e(x[i : i + 1]), atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match="per-row strengths for 3 rows"):
            eds[0].stack(eds)(x[:3])


def test_row_slot_needs_positions(engine, requests_):
    """A per-row context without the generator's positions fails in one line, and
    `intervene_rows` with no interventions leaves the model alone."""
    r = requests_[0]
    with intervene_rows(engine.model, [[direction_intervention(HOOK, torch.ones(
            engine.d_model))]]) as where, pytest.raises(RuntimeError, match="observer"):
        engine.generate(r.text_ids, r.prompt, r.n_text)
    assert isinstance(where, RowPositions)
    cfg = SamplingConfig(seed=2, min_ratio=2.0, max_ratio=4.0)
    with intervene_rows(engine.model, [[], []]) as where:
        out = generate_batch(engine.model, [(r.text_ids, r.prompt, r.n_text)] * 2, cfg,
                             observer=where)
    with intervene(engine.model, []):
        assert out == [engine.generate(r.text_ids, r.prompt, r.n_text, cfg)] * 2


def test_keep_norm_turns_the_residual_and_stacks(engine, requests_, sae):
    """Norm-preserving edits: every edited position keeps its norm; batched rows (directions and
    SAE edits at per-row strengths, which stack) are each what they are alone."""
    from interp.hooks import KeepNorm

    x = torch.randn(2, 5, engine.d_model)
    vec = 10 * torch.ones(engine.d_model)
    y = direction_intervention(HOOK, vec, keep_norm=True).fn(x)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity
    assert (cos(y, vec.expand_as(y), dim=-1) > cos(x, vec.expand_as(x), dim=-1)).all()
    assert isinstance(sae_intervention(sae, HOOK, LatentEdit((1,), (2.0,)), 1.0,
                                       keep_norm=True).fn, KeepNorm)
    g = torch.Generator().manual_seed(5)
    v = 8 * torch.nn.functional.normalize(torch.randn(engine.d_model, generator=g), dim=0)
    edit = LatentEdit((1, 7, 30), (2.0, 1.5, 3.0), "clamp")
    for make in (lambda s, m: direction_intervention(HOOK, s * v, m, keep_norm=True),
                 lambda s, m: sae_intervention(sae, HOOK, edit, s, m, keep_norm=True)):
        ivs = [[make(s, position_mask("speech", r.modality))]
               for s, r in zip([0.0, 2.0, 4.0, 1.0, 8.0], requests_, strict=True)]
        assert ivs[1][0].fn.stack_key is not None  # stacks into one per-row edit
        seeds = list(range(5))
        alone = _alone(engine, requests_, ivs, seeds)
        assert generate_steered_batch(engine, requests_, ivs, seeds, SAMPLING) == alone
        plain = _alone(engine, requests_, [[]] * 5, seeds)
        assert alone[0] == plain[0] and sum(a != b for a, b in zip(alone, plain, strict=True)) >= 2


def test_clamped_direction_raises_only_what_is_short_and_stacks(engine, requests_):
    """diffmeans_clamp's edit: each position's component along the direction is raised to the
    level, never lowered; batched rows at per-row levels are each what they are alone."""
    g = torch.Generator().manual_seed(3)
    v = 5 * torch.nn.functional.normalize(torch.randn(engine.d_model, generator=g), dim=0)
    u = v / v.norm()
    x = torch.randn(2, 6, engine.d_model) + 3 * u * torch.tensor([-2.0, 0, 2, 4, -1, 1])[:, None]
    y = direction_intervention(HOOK, v, clamp_to=1.5).fn(x)
    before, after = x @ u, y @ u
    assert torch.allclose(after, before.clamp_min(1.5), atol=1e-5)
    rest = lambda z: z - (z @ u)[..., None] * u  # noqa: E731
    assert torch.allclose(rest(y), rest(x), atol=1e-5)  # nothing else moves
    ivs = [[direction_intervention(HOOK, v, position_mask("speech", r.modality), clamp_to=lv)]
           for lv, r in zip([0.0, 2.0, 6.0, 1.0, 9.0], requests_, strict=True)]
    assert ivs[1][0].fn.stack_key is not None
    seeds = list(range(5))
    alone = _alone(engine, requests_, ivs, seeds)
    assert generate_steered_batch(engine, requests_, ivs, seeds, SAMPLING) == alone
