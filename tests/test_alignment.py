"""Text-speech alignment: word spans per frame, recomputed attention, guided-attention training."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from interp.audio.tokenize_corpus import load_tokens
from interp.corpus.table import load_table
from interp.models.alignment import alignment_report
from interp.models.data import TOKEN_RATE, make_examples
from interp.models.guide import attention_inputs, guide_loss, head_attention
from interp.models.loss import batch_loss, embed_batch
from interp.models.text_tokenizer import load_tokenizer
from interp.models.tinycosy import TinyCosy
from interp.models.train import TrainConfig, fit


@pytest.fixture()
def model_and_examples(tiny_tinycosy, tiny_corpus, tiny_tokens):
    export, _ = tiny_tinycosy
    rows = load_table(tiny_corpus)
    ex = make_examples(rows, load_tokens(tiny_tokens), load_tokenizer(export),
                       drop_prompt_text=0.0)
    return TinyCosy.load(export), ex, rows, load_tokenizer(export)


def test_word_spans_point_at_the_spoken_words_tokens(model_and_examples):
    _, ex, rows, tok = model_and_examples
    by_id = {r["utt_id"]: r for r in rows}
    for e in ex[:5]:
        span, row = e.spoken_span, by_id[e.utt_id]
        assert span.shape == (len(e.target), 2) and (span[:, 0] <= span[:, 1]).all()
        for w in row["words"]:
            mid = int((w["start"] + w["end"]) / 2 * TOKEN_RATE)
            if mid < len(span) and w["end"] - w["start"] > 2 / TOKEN_RATE:
                lo, hi = span[mid].tolist()
                assert tok.decode(e.text_ids[lo : hi + 1].tolist()).strip() == w["word"]


def test_head_attention_is_the_layers_own_softmax(model_and_examples):
    """Recomputed from the captured q/k inputs, on a padded batch, it equals what the eager
    attention of transformers returns for every head."""
    model, ex, _, _ = model_and_examples
    batch = [ex[0], ex[3], ex[5]]
    embeds, mask, _ = embed_batch(model, batch, [e.target for e in batch])
    with torch.no_grad(), attention_inputs(model, [0, 1]) as seen:
        model(embeds, attention_mask=mask)
        model.llm.model.config._attn_implementation = "eager"
        try:
            ref = model.llm.model.model(inputs_embeds=embeds, attention_mask=mask,
                                        output_attentions=True).attentions
        finally:
            model.llm.model.config._attn_implementation = "sdpa"
        for layer in (0, 1):
            mine = head_attention(model, layer, seen[layer], mask)
            for b in range(len(batch)):
                n = int(mask[b].sum())
                assert torch.allclose(mine[b, :, :n, :n], ref[layer][b, :, :n, :n], atol=1e-5)
            assert torch.equal(head_attention(model, layer, seen[layer], mask, [3])[:, 0],
                               mine[:, 3])
        # inputs captured under bf16 autocast (CUDA training) are recomputed in fp32
        hidden, (cos, sin) = seen[1]
        half = head_attention(model, 1, (hidden.bfloat16(), (cos.bfloat16(), sin.bfloat16())), mask)
        assert half.dtype == torch.float32 and torch.allclose(half, mine, atol=0.05)


def test_guided_attention_loss_and_training(model_and_examples):
    """--attn-guide adds w × (−log of the guided head's mass on the spoken word's tokens), that
    mass summed by hand from the head's attention rows."""
    model, ex, _, _ = model_and_examples
    batch = ex[:4]
    embeds, mask, starts = embed_batch(model, batch, [e.target for e in batch])
    with torch.no_grad():
        clean = batch_loss(model, batch).item()
        with attention_inputs(model, [1]) as seen:
            model(embeds, attention_mask=mask)
        probs = head_attention(model, 1, seen[1], mask, [2])[:, 0]
        want = []  # by hand: sum the row over the word's sequence positions (1 + text index)
        for b, (s, e) in enumerate(zip(starts, batch, strict=True)):
            for j, (lo, hi) in enumerate(e.spoken_span.tolist()):
                if lo >= 0:
                    want.append(-np.log(float(probs[b, s + j, 1 + lo : 2 + hi].sum())))
        guide = guide_loss(model, seen[1], mask, starts, batch, 1, 2).item()
        assert guide == pytest.approx(np.mean(want), rel=1e-4)
        assert batch_loss(model, batch, attn_guide=0.5, attn_guide_layer=1,
                          attn_guide_head=2).item() == pytest.approx(clean + 0.5 * guide, rel=1e-4)


@pytest.mark.slow
def test_guided_training_makes_a_pointer(tmp_path, model_and_examples):
    """A few dozen steps of --attn-guide turn the guided head into a pointer at the spoken word:
    its mass there grows several-fold and its top sentence token lands on the word far above
    chance; the report's shapes follow the model."""
    model, ex, _, _ = model_and_examples
    before = alignment_report(model, ex[:8])
    assert before["frames"] > 0 and 0 < before["chance"] < 1
    assert np.array(before["on_word"]).shape == np.array(before["mass"]).shape == (2, 4)
    torch.manual_seed(0)
    fit(model, ex, {}, TrainConfig(steps=40, batch_size=8, lr=1e-2, warmup=2, attn_guide=3.0,
                                   attn_guide_layer=1, attn_guide_head=2, seed=1,
                                   out=str(tmp_path / "run")))
    after = alignment_report(model.eval(), ex[:8])
    assert after["mass"][1][2] > 2 * before["mass"][1][2]
    assert after["on_word"][1][2] > max(2 * after["chance"], before["on_word"][1][2] + 0.1)


def test_attn_guide_refuses_what_it_cannot_do(tmp_path, model_and_examples):
    model, ex, _, _ = model_and_examples
    cfg = TrainConfig(steps=1, attn_guide=0.1, attn_guide_layer=2, out=str(tmp_path / "r"))
    with pytest.raises(ValueError, match="attn-guide-layer"):
        fit(model, ex, {}, cfg)
    with pytest.raises(ValueError, match="attn-guide-layer"):
        fit(model, ex, {}, replace(cfg, attn_guide_layer=1, attn_guide_head=4))
    with pytest.raises(ValueError, match="word timings"):  # TinyEdit's pairs, phonemes
        fit(model, [replace(ex[0], spoken_span=None)], {}, replace(cfg, attn_guide_layer=1))
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.slow
def test_alignment_cli(tiny_tinycosy, tiny_corpus, tiny_tokens, tmp_path):
    out = tmp_path / "align.json"
    r = subprocess.run([sys.executable, "-m", "interp.models.alignment", "--model",
                        str(tiny_tinycosy[0]), "--corpus", str(tiny_corpus), "--tokens",
                        str(tiny_tokens), "--split", "train", "--n", "4", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "best head: layer" in r.stdout and out.exists()
    r = subprocess.run([sys.executable, "-m", "interp.models.alignment", "--model",
                        str(tiny_tinycosy[0]), "--corpus", str(tiny_corpus), "--tokens",
                        str(tiny_tokens), "--split", "nope"], capture_output=True, text=True)
    assert r.returncode != 0 and "--split 'nope'" in r.stderr


def _loss_and_grads(model, batch, **kw) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss = batch_loss(model, batch, attn_guide=0.5, attn_guide_layer=1, attn_guide_head=2, **kw)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.slow
def test_bf16_and_compiled_steps_match_the_fp32_eager_step(model_and_examples):
    """--precision bf16 on the CPU (autocast, math attention) and --compile give the fp32 eager
    loss and gradients, guided-attention term included (the guide's hook still sees a compiled
    layer's inputs); a bad --precision is refused."""
    import copy

    model, ex, _, _ = model_and_examples
    batch = ex[:4]
    ref_loss, ref_grad = _loss_and_grads(model, batch)
    loss, grad = _loss_and_grads(model, batch, precision="bf16")
    assert loss == pytest.approx(ref_loss, rel=0.02)
    assert torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0) > 0.99
    compiled = copy.deepcopy(model)
    compiled.compile(dynamic=True)
    loss, grad = _loss_and_grads(compiled, batch)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    assert torch.allclose(grad, ref_grad, atol=1e-5, rtol=1e-3)
    assert set(compiled.state_dict()) == set(model.state_dict())  # checkpoints load either way
    with pytest.raises(ValueError, match="--precision 'fp16'"):
        batch_loss(model, batch, precision="fp16")


def test_padding_to_a_multiple_changes_no_loss(model_and_examples):
    """--pad-multiple rounds each batch's length up (fewer distinct tensor sizes); the padded
    positions are masked and never read, so the loss, guide loss included, is the same."""
    model, ex, _, _ = model_and_examples
    batch = ex[:4]
    assert embed_batch(model, batch, [e.target for e in batch], 64)[0].shape[1] % 64 == 0
    kw = dict(attn_guide=0.5, attn_guide_layer=1, attn_guide_head=2)
    with torch.no_grad():
        for extra in ({}, kw):
            assert batch_loss(model, batch, pad_multiple=64, **extra).item() == pytest.approx(
                batch_loss(model, batch, **extra).item(), rel=1e-5)
