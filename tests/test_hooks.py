"""Hook points: names, capture equal to the model's own hidden states, interventions under a
KV cache equal to a full recompute."""

from __future__ import annotations

import pytest
import torch

from interp.hooks import (
    Intervention,
    capture,
    from_position,
    hook_names,
    intervene,
    modality_positions,
    run_with_cache,
)
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from interp.models.tinycosy_backbone import TinyCosyBackbone


@pytest.fixture(scope="module")
def backbone() -> TinyCosyBackbone:
    torch.manual_seed(0)
    cfg = TinyCosyConfig(n_layers=3, hidden=32, n_heads=2, n_kv_heads=1, mlp=64, text_vocab=50,
                         speech_codes=40)
    return TinyCosyBackbone(TinyCosy(cfg).eval())


TEXT, PROMPT, TARGET = torch.tensor([3, 4, 5]), torch.tensor([1, 2, 3, 4]), torch.tensor([7, 8, 9])


def test_hook_names_and_errors(backbone):
    names = hook_names(3)
    assert len(names) == 15 and names[0] == "blocks.0.hook_resid_pre"
    with pytest.raises(ValueError, match="valid are blocks"), capture(
            backbone.model, ["blocks.3.hook_resid_post"]):
        pass
    with pytest.raises(ValueError, match="unknown hook point"), capture(
            backbone.model, ["blocks.0.resid_post"]):
        pass


def test_capture_matches_hidden_states(backbone):
    out, cache = run_with_cache(backbone, TEXT, PROMPT, TARGET)
    embeds = torch.cat([backbone.model.prefix(TEXT, PROMPT),
                        backbone.model.speech_embedding(TARGET)])[None]
    hs = backbone.model.llm.model.model(inputs_embeds=embeds, output_hidden_states=True
                                        ).hidden_states
    T = len(out.modality)
    for layer in range(3):
        pre, post = cache[f"blocks.{layer}.hook_resid_pre"], cache[f"blocks.{layer}.hook_resid_post"]
        assert pre.shape == (1, T, 32)
        assert torch.allclose(pre, hs[layer], atol=1e-6)
        mid = cache[f"blocks.{layer}.hook_resid_mid"]
        assert torch.allclose(mid, pre + cache[f"blocks.{layer}.hook_attn_out"], atol=1e-5)
        assert torch.allclose(post, mid + cache[f"blocks.{layer}.hook_mlp_out"], atol=1e-5)


@pytest.mark.parametrize("kind", ["hook_resid_pre", "hook_resid_mid", "hook_resid_post",
                                  "hook_attn_out", "hook_mlp_out"])
def test_intervention_changes_only_masked_positions(backbone, kind):
    name = f"blocks.1.{kind}"
    clean, cache = run_with_cache(backbone, TEXT, PROMPT, TARGET, [name])
    modality = clean.modality
    iv = Intervention(name, lambda x: x + 3.0, modality_positions(modality, "speech"))
    with intervene(backbone.model, iv), capture(backbone.model, [name]) as edited:
        out = backbone.teacher_forced(TEXT, PROMPT, TARGET)
    speech = torch.tensor([m == "speech" for m in modality])
    first_speech = int(speech.nonzero()[0])
    assert torch.allclose(out.logits[:first_speech], clean.logits[:first_speech], atol=1e-5)
    assert not torch.allclose(out.logits[first_speech:], clean.logits[first_speech:])
    if kind in ("hook_resid_pre", "hook_resid_mid"):  # later hooks see the edit of earlier ones
        return
    delta = edited[name] - cache[name]
    assert torch.allclose(delta[0, speech], torch.full_like(delta[0, speech], 3.0), atol=1e-4)


def test_intervention_under_kv_cache_equals_recompute(backbone):
    model = backbone.model
    prefix = model.prefix(TEXT, PROMPT)[None]
    start = prefix.shape[1]
    edit = Intervention("blocks.1.hook_resid_post", lambda x: x * 1.5, from_position(start - 1))
    steps = [5, 6, 7, 8]
    with intervene(model, edit):  # KV-cached: prefill, then one token at a time
        logits, past = model(prefix, use_cache=True)
        cached = [logits[0, -1]]
        for tok in steps:
            emb = model.speech_embedding(torch.tensor([[tok]]))
            logits, past = model(emb, past_key_values=past, use_cache=True)
            cached.append(logits[0, -1])
    full = torch.cat([prefix, model.speech_embedding(torch.tensor([steps]))], dim=1)
    with intervene(model, edit):  # no cache: the whole sequence at once
        recomputed, _ = model(full)
    for i, c in enumerate(cached):
        assert torch.allclose(c, recomputed[0, start - 1 + i], atol=1e-4), i


def test_hooks_are_removed(backbone):
    with intervene(backbone.model, Intervention("blocks.0.hook_mlp_out", lambda x: x * 0)):
        pass
    layer = backbone.model.layers[0]
    assert not layer.mlp._forward_hooks and not layer._forward_pre_hooks


def test_capture_during_generation(backbone):
    from interp.hooks.capture import generate_with_cache
    from interp.models.generate import SamplingConfig

    name = "blocks.2.hook_resid_post"
    g = generate_with_cache(backbone, TEXT, PROMPT, n_text=3, names=[name],
                            sampling=SamplingConfig(seed=3, min_ratio=2, max_ratio=4))
    prefix = 1 + len(TEXT) + 1 + len(PROMPT)
    assert g.cache[name].shape[1] == len(g.modality) == len(g.t0)
    n_fed = len(g.modality) - prefix
    assert n_fed == len(g.tokens) >= 6
    assert g.t0[prefix:] == [j / 25 for j in range(n_fed)]
    # the cached activations equal a teacher-forced pass over the same tokens
    _, cache = run_with_cache(backbone, TEXT, PROMPT, torch.tensor(g.tokens[:n_fed]), [name])
    assert torch.allclose(g.cache[name], cache[name], atol=1e-5)
