"""The sparse BatchTopK step engine (`sae.engine`): its selection is SAELens's BatchTopK exactly, its
hand-written gradients are autograd's (plain and Matryoshka), its Matryoshka losses are SAELens's,
and it trains an SAE that SAELens loads."""

from __future__ import annotations

import pytest
import torch
from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.batchtopk_sae import BatchTopK
from sae_lens.saes.sae import TrainStepInput

from sae.engine import SparseBatchTopK, SparseTrainer, lr_factor

torch.set_num_threads(1)


def make_sae(d_in: int = 16, d_sae: int = 64, k: float = 4, seed: int = 0,
             widths: list[int] | None = None) -> BatchTopKTrainingSAE:
    torch.manual_seed(seed)
    kw = dict(d_in=d_in, d_sae=d_sae, k=k, rescale_acts_by_decoder_norm=True,
              normalize_activations="none", device="cpu")
    if widths:
        return MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
            **kw, matryoshka_widths=widths))
    return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**kw))


@pytest.mark.parametrize("last_cut", [0.0, 0.5, 5.0])  # no guess, a good guess, a too-high guess
def test_selection_is_saelens_batchtopk(last_cut):
    torch.manual_seed(1)
    pre = torch.randn(32, 64)
    coder = SparseBatchTopK(make_sae())
    flat = coder.select(pre, 4 * 32, last_cut)
    assert torch.equal(flat, flat.sort().values)  # sorted by position: rows come in order
    want = BatchTopK(4)(pre).view(-1).nonzero().squeeze(1)
    assert torch.equal(flat, want)


def test_selection_keeps_only_positive_entries():
    pre = -torch.rand(8, 16)
    pre[0, 3] = 1.0
    coder = SparseBatchTopK(make_sae(d_sae=16))
    assert coder.select(pre, 32, 0.0).tolist() == [3]


def reference_loss(coder: SparseBatchTopK, x: torch.Tensor, dead: torch.Tensor,
                   aux_coef: float, main: torch.Tensor, aux_flat: torch.Tensor,
                   widths: tuple[int, ...] = ()) -> torch.Tensor:
    """The same loss through autograd, on the engine's own selections (main: flat indices into
    B × d_sae; aux_flat: flat indices into B × dead); with `widths`, plus the squared error of
    each inner prefix's reconstruction (Matryoshka)."""
    B, d = x.shape
    sae_in = x - coder.b_dec
    pre = sae_in @ coder.W_enc.T + coder.b_enc
    z = torch.zeros_like(pre).view(-1).index_put((main,), pre.view(-1)[main]).view_as(pre)
    recon = z @ coder.W_dec + coder.b_dec
    loss = (recon - x).pow(2).sum(-1).mean()
    for w in widths[:-1]:
        loss = loss + (z[:, :w] @ coder.W_dec[:w] + coder.b_dec - x).pow(2).sum(-1).mean()
    dead_idx = dead.nonzero().squeeze(1)
    pre_dead = pre[:, dead_idx]
    za = torch.zeros_like(pre_dead).view(-1).index_put(
        (aux_flat,), pre_dead.view(-1)[aux_flat].relu()).view_as(pre_dead)
    residual = (x - recon).detach()
    scale = min(len(dead_idx) / (d // 2), 1.0)
    aux = scale * (za @ coder.W_dec[dead_idx] - residual).pow(2).sum(-1).mean()
    return loss + aux_coef * aux


@pytest.mark.parametrize("widths", [None, [8, 24, 64]])  # BatchTopK, Matryoshka
def test_hand_written_gradients_match_autograd(widths):
    sae = make_sae(widths=widths)
    torch.manual_seed(2)
    with torch.no_grad():
        sae.b_dec.normal_()
    coder = SparseBatchTopK(sae)
    x = torch.randn(24, 16) * 2
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::3] = True
    picks = {}
    real_select = coder.select

    def spy(pre, n, cut):
        out = real_select(pre, n, cut)
        picks["aux" if "main" in picks else "main"] = out
        return out

    coder.select = spy
    parts = coder.forward_backward(x, dead, aux_coef=0.5)
    got = {n: p.grad.clone() for n, p in coder.named_parameters()}
    assert float(parts["aux"]) > 0 and len(picks["aux"]) > 0
    for p in coder.parameters():
        p.grad = None
    with torch.enable_grad():
        ref = reference_loss(coder, x, dead, 0.5, picks["main"], picks["aux"], widths or ())
        ref.backward()
    assert float(parts["loss"]) == pytest.approx(float(ref.detach()), rel=1e-5)
    for name, p in coder.named_parameters():
        assert torch.allclose(got[name], p.grad, atol=1e-5, rtol=1e-4), name


def test_matryoshka_losses_are_saelens():
    """On unit-norm decoder rows (the engine keeps them so) and no dead latents, the engine's
    full and inner-prefix squared errors are SAELens's `MatryoshkaBatchTopKTrainingSAE`'s."""
    sae = make_sae(widths=[8, 24, 64])
    torch.manual_seed(4)
    with torch.no_grad():
        sae.W_dec.copy_(torch.nn.functional.normalize(sae.W_dec, dim=1))
        sae.b_dec.normal_()
    x = torch.randn(32, 16) * 2
    coder = SparseBatchTopK(sae)
    parts = coder.forward_backward(x, None, aux_coef=0.0)
    with torch.no_grad():
        out = sae.training_forward_pass(TrainStepInput(x, {}, None, 0, False))
    for name in ("mse_loss", "inner_mse_loss_8", "inner_mse_loss_24"):
        mine = parts["mse" if name == "mse_loss" else name]
        assert float(mine) == pytest.approx(float(out.losses[name]), rel=1e-5), name
    assert float(parts["loss"]) == pytest.approx(float(out.loss), rel=1e-5)
    assert torch.allclose(parts["recon"], out.sae_out, atol=1e-5)


def test_weights_round_trip_through_saelens_unchanged_in_output():
    sae = make_sae()
    x = torch.randn(40, 16)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(64, 1) + 0.5)  # decoder rows of assorted norms
        want = sae.decode(sae.encode(x))
        coder = SparseBatchTopK(sae)
        assert torch.allclose(coder.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)
        other = make_sae(seed=9)
        coder.copy_to(other)
        got = other.decode(other.encode(x))
    assert torch.allclose(got, want, atol=1e-4)


def test_training_lowers_the_loss_and_tracks_dead_latents():
    torch.manual_seed(3)
    atoms = torch.nn.functional.normalize(torch.randn(32, 16), dim=1)
    data = [torch.rand(64, 32).pow(8) @ atoms * 4 for _ in range(200)]
    sae = make_sae()
    with torch.no_grad():
        sae.b_dec.copy_(torch.cat(data).mean(0))
    tr = SparseTrainer(sae, steps=len(data), lr=5e-3, warmup_frac=0.05, decay_frac=0.2,
                       dead_window=10, aux_coef=1.0)
    losses = [float(tr.step(x)["mse"]) for x in data]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert tr.n_training_steps == 200 and tr.n_training_samples == 200 * 64
    assert 0 < float(tr.coder.threshold) < 10
    assert torch.allclose(tr.coder.W_dec.norm(dim=1), torch.ones(64), atol=1e-4)
    tr.sync()
    assert torch.equal(sae.W_enc, tr.coder.W_enc.T)


def test_bf16_matmul_trains_as_fp32_does():
    # The CUDA path (`--precision bf16`) runs on a CPU too: same data, same start, and the
    # losses track fp32's to bf16's rounding.
    torch.manual_seed(3)
    atoms = torch.nn.functional.normalize(torch.randn(32, 16), dim=1)
    data = [torch.rand(64, 32).pow(8) @ atoms * 4 for _ in range(200)]
    curves = {}
    for precision in ("fp32", "bf16"):
        sae = make_sae()
        with torch.no_grad():
            sae.b_dec.copy_(torch.cat(data).mean(0))
        tr = SparseTrainer(sae, steps=len(data), lr=5e-3, warmup_frac=0.05, decay_frac=0.2,
                           dead_window=10, aux_coef=1.0, precision=precision)
        curves[precision] = [float(tr.step(x)["mse"]) for x in data]
        assert tr.coder.W_enc.dtype == torch.float32  # the weights stay fp32
    fp32, bf16 = (sum(c[-20:]) for c in (curves["fp32"], curves["bf16"]))
    assert bf16 < 0.6 * sum(curves["bf16"][:20]) and abs(bf16 - fp32) < 0.05 * fp32
    assert curves["fp32"] != curves["bf16"]  # it really ran in bf16
    with pytest.raises(ValueError, match="--precision 'fp16'"):
        SparseTrainer(make_sae(), 10, 1e-3, 0.1, 0.1, 10, 1.0, precision="fp16")


def test_lr_schedule_warms_up_holds_and_decays_to_zero():
    f = [lr_factor(s, 100, 0.1, 0.2) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[50] == 1.0
    assert f[80] == 1.0 and f[99] == pytest.approx(1 / 20)
    assert lr_factor(0, 100, 0.0, 0.0) == 1.0
