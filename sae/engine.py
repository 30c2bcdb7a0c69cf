"""Our BatchTopK training step: one dense matmul per batch, everything else sparse.

SAELens's `BatchTopKTrainingSAE` + `SAETrainer.step` pays, per batch of B positions, for a flat
top-k over B × d_sae pre-activations, a dense decoder, and dense backward passes through both
(three B × d_in × d_sae matmuls). Here the same SAE is trained with:
- **exact BatchTopK selection by a threshold guess**: positions × latents above a guess below
  the (k·B)-th value (the last step's cut, shrunk) are the only candidates, and an exact top-k
  runs among them; a guess that leaves fewer than k·B candidates falls back to the full top-k;
- **sparse everything else**: the encoder's backward pass and the decoder's forward and backward
  passes touch only the k·B selected (position, latent) pairs (gathers and index-adds), so the
  encoder's forward pass is the only dense matmul;
- **a unit-norm decoder** (the gradient along each decoder row is removed before the step and
  the rows renormalised after), so SAELens's `rescale_acts_by_decoder_norm` is the identity and
  the weights drop into its `BatchTopKTrainingSAE` unchanged: checkpoints, the saved JumpReLU
  inference SAE and every metric stay SAELens's.
The losses are SAELens's: squared error summed over d_in and averaged over the batch; the AuxK
loss of the dead latents (the k_aux = d_in/2 largest dead pre-activations reconstruct the
residual, weighted by min(dead / k_aux, 1)); and the threshold that becomes the JumpReLU
threshold, an EMA of the smallest kept activation.

A Matryoshka BatchTopK SAE (SAELens's `MatryoshkaBatchTopKTrainingSAE`, arXiv 2503.17547) adds
one squared error per nested prefix of the dictionary (`matryoshka_widths`, d_sae last): the
same BatchTopK selection, decoded with only the latents below each width (b_dec included), must
reconstruct the input too; the AuxK loss stays on the whole reconstruction's residual (SAELens's
default, `use_matryoshka_aux_loss=False`). Here a selected pair (position, latent in level i)
feeds the reconstructions of levels i, i+1, …, so its gradient is the sum of those levels'
gradients, kept as one suffix sum per level: still one gather per pair.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sae_lens import BatchTopKTrainingSAE
from torch import Tensor, nn

from sae.config import PRECISIONS

STATE_FILE = "engine_state.pt"
GUESS_SHRINK = 0.8  # candidates above 0.8 × the last cut: ~1.5 × k·B of them once training settles
# A fresh encoder starts as the decoder's directions at half its (unit) norm, as sparsify's does
# (1/√3). SAELens's start (encoder = decoder, kaiming row norms folded into the activations)
# left 86% of the latents never firing after 200k positions of TinyCosy's layer 12 (FVU 0.34 at
# lr 5e-3); this start reached FVU 0.044 with 30% never firing (benchmarks/sae_training.py).
ENCODER_INIT_NORM = 0.5


class SparseBatchTopK(nn.Module):
    """The training SAE in a (d_sae, d_in) layout for both encoder and decoder, so that a
    selected latent's weights are one contiguous row to gather and to accumulate into."""

    def __init__(self, sae: BatchTopKTrainingSAE):
        super().__init__()
        with torch.no_grad():
            self.W_enc = nn.Parameter(sae.W_enc.detach().T.contiguous().float())
            self.b_enc = nn.Parameter(sae.b_enc.detach().clone().float())
            self.W_dec = nn.Parameter(sae.W_dec.detach().clone().float())
            self.b_dec = nn.Parameter(sae.b_dec.detach().clone().float())
            norms = self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            # Unit decoder rows; scaling the encoder rows alike keeps each latent's output
            # (with rescale_acts_by_decoder_norm, hidden_pre·‖W_dec‖) unchanged.
            self.W_dec /= norms
            self.W_enc *= norms
        self.register_buffer("threshold", sae.topk_threshold.detach().clone().double())
        self.k, self.threshold_lr = float(sae.cfg.k), float(sae.cfg.topk_threshold_lr)
        widths = list(getattr(sae.cfg, "matryoshka_widths", None) or [])
        # Matryoshka: the latent index where each level but the last ends (None = BatchTopK)
        self.bounds = torch.tensor(widths[:-1]) if len(widths) > 1 else None
        # dtype of the one dense matmul's inputs (bf16 on CUDA: `sae.train --precision`); its
        # result and everything after it stay fp32
        self.matmul_dtype = torch.float32
        self.cut = 0.0  # the last batch's smallest kept activation: the next selection's guess
        self.aux_cut = 0.0  # the same for the AuxK selection

    @torch.no_grad()
    def copy_to(self, sae: BatchTopKTrainingSAE) -> None:
        """Write the weights and threshold into a SAELens training SAE of the same shape."""
        sae.W_enc.copy_(self.W_enc.T)
        sae.b_enc.copy_(self.b_enc)
        sae.W_dec.copy_(self.W_dec)
        sae.b_dec.copy_(self.b_dec)
        sae.topk_threshold.copy_(self.threshold)

    @torch.no_grad()
    def select(self, pre: Tensor, n_keep: int, last_cut: float) -> Tensor:
        """Sorted flat indices into `pre` (B × d_sae) of its `n_keep` largest positive entries
        (fewer when fewer are positive): exactly the flat top-k of SAELens's BatchTopK.
        `last_cut`, the smallest value kept last time, makes the candidates' guess."""
        flat = pre.reshape(-1)
        guess = last_cut * GUESS_SHRINK
        cand = None
        if guess > 0:
            if flat.device.type == "cpu":  # numpy's compare-and-nonzero is ~3x torch's on CPU
                cand = torch.from_numpy(np.flatnonzero(flat.numpy() > guess))
            else:
                cand = (flat > guess).nonzero().squeeze(1)
        if cand is not None and len(cand) >= n_keep:  # the n_keep largest are all above it
            vals = flat[cand]
            cut = vals.kthvalue(len(vals) - n_keep + 1).values
            pick = cand[vals >= cut]  # still in order: no sort needed
            if len(pick) == n_keep:  # more means ties at the cut, resolved below
                return pick
            pick = cand[vals.topk(n_keep, sorted=False).indices]
        else:
            top = flat.topk(min(n_keep, len(flat)), sorted=False)
            pick = top.indices[top.values > 0]
        return pick.sort().values

    @torch.no_grad()
    def forward_backward(self, x: Tensor, dead: Tensor | None, aux_coef: float
                         ) -> dict[str, Tensor]:
        """Loss parts of batch x (B, d_in), with the gradients written into `.grad` by hand.

        `dead` (d_sae,) bool marks the latents of the AuxK loss. Gradients are hand-written
        because autograd would materialise a (k·B, d_in) gather per sparse operand; here every
        sparse sum is one `embedding_bag` (a fused gather-scale-add), and only the selected
        activations' gradients need per-pair dot products. tests/test_sae_engine.py checks
        them against autograd."""
        B, d = x.shape
        S = self.W_enc.shape[0]
        sae_in = x - self.b_dec
        dt = self.matmul_dtype
        if dt == torch.float32:
            pre = torch.addmm(self.b_enc, sae_in, self.W_enc.T)  # the one dense matmul
        else:
            pre = torch.addmm(self.b_enc.to(dt), sae_in.to(dt), self.W_enc.T.to(dt)).float()
        flat = self.select(pre, int(self.k * B), self.cut)
        rows, cols = flat // S, flat % S
        acts = pre.view(-1)[flat]
        inner: dict[str, Tensor] = {}
        if self.bounds is None:
            recon = self._decode(rows, cols, acts, B) + self.b_dec
            err = recon - x
            mse = err.pow(2).sum(-1).mean()
            g_recon, pair_rows = err * (2 / B), rows  # ∂loss/∂recon, and each pair's row of it
        else:
            recon, g_recon, level = self._nested(x, rows, cols, acts, inner)
            err = recon - x
            mse = err.pow(2).sum(-1).mean()
            pair_rows = level * B + rows  # rows of the pair's level's suffix sum
        g_acts = torch.linalg.vecdot(g_recon[pair_rows], self.W_dec[cols])
        order = cols.argsort()
        per_col = torch.bincount(cols, minlength=S)
        offsets = per_col.cumsum(0) - per_col
        # ∂/∂W_dec[c] = Σ_pairs act · ∂recon[row];  ∂/∂W_enc[c] = Σ_pairs ∂act · sae_in[row]
        self.W_dec.grad = F.embedding_bag(pair_rows[order], g_recon, offsets, mode="sum",
                                          per_sample_weights=acts[order])
        self.W_enc.grad = F.embedding_bag(rows[order], sae_in, offsets, mode="sum",
                                          per_sample_weights=g_acts[order])
        self.b_enc.grad = torch.zeros(S, dtype=x.dtype, device=x.device).index_add_(
            0, cols, g_acts)
        aux = x.new_zeros(())
        if dead is not None and aux_coef > 0 and bool(dead.any()):
            aux = self._aux(pre, sae_in, dead, -err, aux_coef)
        # b_dec enters every level's output directly (the first suffix sum holds them all) and
        # the encoder input with a minus sign
        self.b_dec.grad = g_recon[:B].sum(0) - self.b_enc.grad @ self.W_enc
        if len(acts):
            smallest = acts.min()
            self.cut = float(smallest)
            self.threshold.mul_(1 - self.threshold_lr).add_(self.threshold_lr * smallest.double())
        loss = mse + sum(inner.values(), x.new_zeros(())) + aux_coef * aux
        return {"loss": loss, "mse": mse, "aux": aux, "recon": recon, "rows": rows,
                "cols": cols, **inner}

    def _decode(self, rows: Tensor, cols: Tensor, acts: Tensor, B: int) -> Tensor:
        """(B, d_in) Σ act · W_dec[col] per row, over pairs sorted by row (no b_dec)."""
        counts = torch.bincount(rows, minlength=B)
        return F.embedding_bag(cols, self.W_dec, counts.cumsum(0) - counts, mode="sum",
                               per_sample_weights=acts)

    def _nested(self, x: Tensor, rows: Tensor, cols: Tensor, acts: Tensor,
                inner: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The Matryoshka reconstructions: (full reconstruction (B, d), the suffix sums
        Σ_{j >= i} ∂mse_j/∂recon_j of every level i stacked (L·B, d), each pair's level).
        The inner levels' errors go into `inner` as SAELens names them."""
        B = len(x)
        level = torch.bucketize(cols, self.bounds.to(cols.device), right=True)
        recon = self.b_dec.expand(B, -1)
        grads = []
        for i in range(len(self.bounds) + 1):
            mine = level == i
            recon = recon + self._decode(rows[mine], cols[mine], acts[mine], B)
            err = recon - x
            if i < len(self.bounds):
                inner[f"inner_mse_loss_{int(self.bounds[i])}"] = err.pow(2).sum(-1).mean()
            grads.append(err * (2 / B))
        suffix = torch.stack(grads).flip(0).cumsum(0).flip(0)
        return recon, suffix.reshape(-1, x.shape[1]), level

    def _aux(self, pre: Tensor, sae_in: Tensor, dead: Tensor, residual: Tensor,
             coef: float) -> Tensor:
        """The AuxK loss of the dead latents, its gradients added into `.grad`; returns it.

        As SAELens's `calculate_topk_aux_loss` (after ReLU, as in sparsify): the dead latents'
        largest pre-activations, k_aux = d_in/2 per position, reconstruct the residual (no
        b_dec), weighted by min(dead / k_aux, 1). Unlike SAELens, the k_aux·B are chosen across
        the batch (BatchTopK's rule) rather than per position: the per-row top-k over the dead
        latents cost more than the rest of the step. The dead latents are a few hundred, so
        the loss and its gradients are dense products over them alone."""
        B, d = residual.shape
        dead_idx = dead.nonzero().squeeze(1)
        k_aux = d // 2
        scale = min(len(dead_idx) / k_aux, 1.0)
        pre_dead = pre[:, dead_idx]  # (B, D)
        flat = self.select(pre_dead, min(k_aux, len(dead_idx)) * B, self.aux_cut)
        acts = torch.zeros_like(pre_dead)
        if len(flat):
            kept = pre_dead.view(-1)[flat]
            acts.view(-1)[flat] = kept
            self.aux_cut = float(kept.min())
        W_dec = self.W_dec[dead_idx]  # (D, d)
        err = acts @ W_dec - residual
        loss = scale * err.pow(2).sum(-1).mean()
        g = err * (2 * scale * coef / B)
        g_acts = (g @ W_dec.T) * (acts > 0)  # (B, D)
        self.W_dec.grad.index_add_(0, dead_idx, acts.T @ g)
        self.W_enc.grad.index_add_(0, dead_idx, g_acts.T @ sae_in)
        self.b_enc.grad.index_add_(0, dead_idx, g_acts.sum(0))
        return loss

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove each decoder row's gradient along the row (its norm is fixed at 1)."""
        g = self.W_dec.grad
        if g is not None:
            g -= (g * self.W_dec).sum(1, keepdim=True) * self.W_dec

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)


def set_precision(precision: str) -> torch.dtype:
    """The dense matmul's input dtype for `precision`: bf16 for bf16, else fp32 (tf32 lets CUDA
    run fp32 matmuls on its TF32 tensor cores, a process-wide switch; a CPU ignores it)."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
    return torch.bfloat16 if precision == "bf16" else torch.float32


def lr_factor(step: int, steps: int, warmup_frac: float, decay_frac: float) -> float:
    """Linear warm-up over the first warmup_frac of the steps, constant, then a linear decay to
    zero over the last decay_frac."""
    warm, decay = round(warmup_frac * steps), round(decay_frac * steps)
    if warm and step < warm:
        return (step + 1) / warm
    if decay and step >= steps - decay:
        return max(steps - step, 0) / decay
    return 1.0


class SparseTrainer:
    """The step engine `sae.train` drives (as it drives SAELens's `SAETrainer`): Adam on a
    `SparseBatchTopK`, the learning-rate schedule, dead-latent tracking, and trainer state in
    the checkpoint folder. `self.sae`, the SAELens training SAE, receives the weights whenever
    they are saved or measured (`sync`)."""

    def __init__(self, sae: BatchTopKTrainingSAE, steps: int, lr: float, warmup_frac: float,
                 decay_frac: float, dead_window: int, aux_coef: float,
                 precision: str = "fp32"):
        self.sae = sae
        self.coder = SparseBatchTopK(sae).to(sae.W_dec.device)
        self.coder.matmul_dtype, self.precision = set_precision(precision), precision
        with torch.no_grad():  # a fresh start (a resumed run loads its weights over this)
            self.coder.W_enc.copy_(self.coder.W_dec * ENCODER_INIT_NORM)
        self.dead_window, self.aux_coef = dead_window, aux_coef
        self.optimizer = torch.optim.Adam(self.coder.parameters(), lr=lr, betas=(0.9, 0.999),
                                          fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, steps, warmup_frac, decay_frac))
        self.since_fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long, device=sae.W_dec.device)
        self.n_training_steps = 0
        self.n_training_samples = 0
        self.scale = 1.0  # inputs are multiplied by this (sae.train's norm scale)

    @property
    def dead_neurons(self) -> Tensor:
        return self.since_fired > self.dead_window

    def step(self, x: Tensor) -> dict[str, Tensor]:
        """One optimiser step on batch x (B, d_in); the loss parts, reconstruction and selection."""
        x = x.to(self.coder.W_dec.device, torch.float32) * self.scale
        parts = self.coder.forward_backward(x, self.dead_neurons, self.aux_coef)
        self.coder.project_decoder_grad()
        self.optimizer.step()
        self.scheduler.step()
        self.coder.normalize_decoder()
        self.since_fired += 1
        self.since_fired[parts["cols"]] = 0
        self.n_training_steps += 1
        self.n_training_samples += len(x)
        parts["sae_in"] = x
        return parts

    def sync(self) -> None:
        """Copy the current weights into the SAELens training SAE."""
        self.coder.copy_to(self.sae)

    def save_trainer_state(self, folder: str | Path) -> None:
        """Optimiser, schedule, dead-latent counters and step counts (weights: `self.sae`,
        synced here so that the SAELens files written beside this one are current)."""
        self.sync()
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "since_fired": self.since_fired.cpu(), "cut": self.coder.cut,
                    "aux_cut": self.coder.aux_cut,
                    "n_training_steps": self.n_training_steps,
                    "n_training_samples": self.n_training_samples}, Path(folder) / STATE_FILE)

    def load_trainer_state(self, folder: str | Path) -> None:
        """Restore from a checkpoint whose SAELens weights are already loaded into `self.sae`."""
        state = torch.load(Path(folder) / STATE_FILE, map_location=self.coder.W_dec.device,
                           weights_only=True)
        fresh = SparseBatchTopK(self.sae).to(self.coder.W_dec.device)
        self.coder.load_state_dict(fresh.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.since_fired.copy_(state["since_fired"])
        self.coder.cut, self.coder.aux_cut = float(state["cut"]), float(state["aux_cut"])
        self.n_training_steps = int(state["n_training_steps"])
        self.n_training_samples = int(state["n_training_samples"])


def flops_per_step(batch: int, d_in: int, d_sae: int, k: float) -> float:
    """Floating-point operations of one step: the dense encoder matmul, plus the sparse gathers
    (forward and backward of encoder and decoder at the k·B kept pairs, ~8 d_in each)."""
    return 2 * batch * d_in * d_sae + 8 * math.ceil(k * batch) * d_in
