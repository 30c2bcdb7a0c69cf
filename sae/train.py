"""`python -m sae.train --layer 12`: a BatchTopK SAE (SAELens) on one layer's cached activations.

Reads the activation store (building it with `interp.cache` when missing) and trains SAELens's
`BatchTopKTrainingSAE` (or, with `--architecture matryoshka`, its
`MatryoshkaBatchTopKTrainingSAE`: every prefix in `--matryoshka-widths` reconstructs too) on
every position or on one modality's (`--modality speech`), with one of two step engines (Adam,
warm-up and linear decay, dead-latent tracking and auxiliary loss): `--engine sparse` (default;
`sae.engine`, ours: one dense matmul per step and sparse gathers for the rest, ~3x SAELens's
speed on CPU) or `--engine saelens` (SAELens's `SAETrainer.step`, with bf16 autocast on CUDA).
Our loop drives either and adds what `SAETrainer.fit` lacks: a resumable data stream, atomic
checkpoints every `--ckpt-every` steps (and on Ctrl-C or SIGTERM), and a progress bar with loss,
L0, explained variance and dead fraction. Inputs are scaled to mean norm √d by a factor measured on
the store; it is folded into the saved SAE, which takes raw activations. Output (SAELens
format): `<out>/cfg.json` + `sae_weights.safetensors`, plus `metrics.json`.
Running the same command again resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import torch
from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    LoggingConfig,
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata, TrainStepOutput
from sae_lens.training.sae_trainer import SAETrainer
from tqdm import tqdm

from interp.cache import CacheConfig, parse_hook_kind, parse_layers, run_cache
from interp.cli import StageInterrupted, add_config_args, config_from_args, run_cli, stop_requests
from interp.device import pick_device
from interp.models.backbone import Backbone
from interp.models.registry import load_backbone
from interp.store import ActivationStore
from interp.store.writer import MANIFEST
from sae.checkpoint import CKPT, checkpoint_dir, load_checkpoint, read_run_state, save_checkpoint
from sae.config import SAETrainConfig
from sae.data import BatchStream, eval_rows, norm_scale, sample_rows, split_shards
from sae.engine import SparseTrainer
from sae.evaluate import finish, summary
from sae.io import METRICS, model_digest, read_metrics

log = logging.getLogger(__name__)


def open_store(cfg: SAETrainConfig, kind: str, backbone: Backbone,
               layers: str | None = None) -> ActivationStore:
    """The layer's activation store, cached first (`layers`, default the one layer) when the
    folder has none or an unfinished one; a store of another hook or model is refused."""
    folder = Path(cfg.store)
    manifest = folder / MANIFEST
    if not manifest.exists() or not json.loads(manifest.read_text()).get("complete"):
        layers = layers or str(cfg.layer)
        log.info("no finished activation store in %s: caching layers %s first", folder, layers)
        run_cache(CacheConfig(layers=layers, hook=kind, model=cfg.model, corpus=cfg.corpus,
                              tokens=cfg.speech_tokens, out=str(folder)), backbone)
    store = ActivationStore(folder, cfg.layer)
    if store.hook != kind:
        raise ValueError(f"{folder} caches {store.hook}, not {kind}; pass --store with another "
                         "folder to cache this hook there")
    if backbone.fingerprint != store.manifest["spec"]["model"]:
        raise ValueError(f"{folder} was cached from another model than {cfg.model}; rebuild the "
                         "store or pass the --model it came from")
    return store


def make_sae(cfg: SAETrainConfig, d_in: int, metadata: dict,
             device: torch.device) -> BatchTopKTrainingSAE:
    """The SAELens training SAE of `cfg.architecture` (Matryoshka is a BatchTopK subclass)."""
    torch.manual_seed(cfg.seed)
    kw = dict(d_in=d_in, d_sae=cfg.d_sae, k=cfg.k, aux_loss_coefficient=cfg.aux_coef,
              topk_threshold_lr=cfg.threshold_lr, rescale_acts_by_decoder_norm=True,
              normalize_activations="none",  # we scale inputs ourselves and fold it in at the end
              device=str(device), metadata=SAEMetadata(**metadata))
    if cfg.architecture == "matryoshka":
        return MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
            **kw, matryoshka_widths=list(cfg.widths)))
    return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(**kw))


def make_trainer(cfg: SAETrainConfig, sae: BatchTopKTrainingSAE, stream: BatchStream,
                 device: torch.device) -> SAETrainer | SparseTrainer:
    """The step engine of `cfg.engine` for `sae`."""
    if cfg.engine == "sparse":
        precision = cfg.precision if cfg.precision != "auto" else (
            "bf16" if device.type == "cuda" else "fp32")
        return SparseTrainer(sae, cfg.steps, cfg.peak_lr, cfg.warmup_frac, cfg.decay_frac,
                             cfg.dead_window, cfg.aux_coef, precision)
    warm = round(cfg.warmup_frac * cfg.steps)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.steps * cfg.batch_size, train_batch_size_samples=cfg.batch_size,
        lr=cfg.peak_lr, lr_end=cfg.peak_lr, lr_scheduler_name="constant",
        lr_warm_up_steps=warm if warm >= 2 else 0, lr_decay_steps=round(cfg.decay_frac * cfg.steps),
        device=str(device), autocast=device.type == "cuda", dead_feature_window=cfg.dead_window,
        logger=LoggingConfig(log_to_wandb=False))
    return SAETrainer(trainer_cfg, sae, stream)


@torch.no_grad()
def step_stats(out: TrainStepOutput | dict, trainer: SAETrainer | SparseTrainer
               ) -> dict[str, float]:
    """Loss, L0, explained variance of the batch, and the fraction of latents now dead."""
    if isinstance(out, dict):  # the sparse engine's step: its selection is the active set
        x, x_hat, loss = out["sae_in"], out["recon"], out["loss"]
        l0 = len(out["rows"]) / len(x)
    else:
        x, x_hat, loss = out.sae_in.float(), out.sae_out.float(), out.loss
        l0 = (out.feature_acts > 0).sum(-1).float().mean().item()
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    return {"loss": round(loss.item(), 4), "L0": round(l0, 2),
            "EV": round(ev.item(), 4),
            "dead": round(trainer.dead_neurons.float().mean().item(), 4)}


def engine_step(trainer: SAETrainer | SparseTrainer, x: torch.Tensor
                ) -> TrainStepOutput | dict:
    """One training step of either engine (SAELens's step leaves the step count to its caller)."""
    if isinstance(trainer, SparseTrainer):
        return trainer.step(x)
    trainer.maybe_reset_sparsity()
    out = trainer.step(x)
    trainer.n_training_steps += 1
    return out


def fit(cfg: SAETrainConfig, sae: BatchTopKTrainingSAE, trainer: SAETrainer | SparseTrainer,
        stream: BatchStream, scale: float) -> dict[str, float]:
    """Train to `cfg.steps`, checkpointing every `ckpt_every` steps and at the end.

    SIGINT/SIGTERM let the step in progress finish, then a checkpoint is written and
    StageInterrupted says which step it kept. An exception (or a second signal) in the middle of
    a step saves nothing: the last whole checkpoint stands."""
    out, stats = cfg.out_dir, {}
    bar = tqdm(total=cfg.steps, initial=trainer.n_training_steps, unit="step",
               desc=f"SAE {sae.cfg.metadata.hook_name}")
    try:
        with stop_requests() as stop:
            while trainer.n_training_steps < cfg.steps:
                output = engine_step(trainer, next(stream))
                step = trainer.n_training_steps
                if step % 10 == 0 or step == cfg.steps:
                    stats = step_stats(output, trainer)
                    bar.set_postfix({k: f"{v:.3f}" if k != "L0" else f"{v:.1f}"
                                     for k, v in stats.items()})
                bar.update(1)
                if stop.requested and step < cfg.steps:
                    raise StageInterrupted(_stop_here(out, sae, trainer, stream, scale, cfg))
                if step % cfg.ckpt_every == 0 and step < cfg.steps:
                    save_checkpoint(out, sae, trainer, stream.state, scale, cfg)
    finally:
        bar.close()
    save_checkpoint(out, sae, trainer, stream.state, scale, cfg)
    return stats


def _stop_here(out: Path, sae: BatchTopKTrainingSAE, trainer: SAETrainer | SparseTrainer,
               stream: BatchStream, scale: float, cfg: SAETrainConfig) -> str:
    """Checkpoint the whole step just finished; the message StageInterrupted carries."""
    save_checkpoint(out, sae, trainer, stream.state, scale, cfg)
    step = trainer.n_training_steps
    log.info("checkpoint at step %d of %d written to %s", step, cfg.steps, out / CKPT)
    return (f"checkpoint at step {step} of {cfg.steps} kept in {out / CKPT}; run the same "
            "command again to resume")


def train(cfg: SAETrainConfig, backbone: Backbone | None = None) -> dict:
    """Train (or resume, or just report a finished run) and return metrics.json's contents.
    `backbone`: the loaded `cfg.model`, when the caller has it (the sweep trains many layers)."""
    out, kind = cfg.out_dir, parse_hook_kind(cfg.hook)
    hook = f"blocks.{cfg.layer}.{kind}"
    ckpt = checkpoint_dir(out)
    if ckpt is not None and (out / METRICS).exists():
        cfg = cfg.sized(ActivationStore(cfg.store, cfg.layer, verify=False).d_model)
        state = read_run_state(ckpt, cfg)
        if state["step"] >= cfg.steps:
            log.info("%s is finished; delete it (or pass another --out) to train again", out)
            return read_metrics(out)
    device = pick_device(cfg.device)
    backbone = backbone or load_backbone(cfg.model, device)
    parse_layers(str(cfg.layer), backbone.n_layers)  # a layer it lacks: its valid range
    backbone.check_hook(hook)
    store = open_store(cfg, kind, backbone)
    cfg = cfg.sized(store.d_model)
    train_shards, eval_shards = split_shards(store, cfg.eval_frac)
    metadata = {"model_name": backbone.name, "model": backbone.spec, "hook_name": hook,
                "layer": cfg.layer, "modality": cfg.modality, "d_model": store.d_model,
                "architecture": cfg.architecture, "matryoshka_widths": list(cfg.widths),
                "store": str(cfg.store), "model_fingerprint": store.manifest["spec"]["model"],
                "model_digest": model_digest(backbone.model)}
    sae = make_sae(cfg, store.d_model, metadata, device)
    stream = BatchStream(store, train_shards, cfg.batch_size, cfg.modality_filter, cfg.buffer,
                         cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    scale = 1.0  # read from the checkpoint when resuming
    if ckpt is None:
        scale = norm_scale(store, train_shards, cfg.modality_filter)
        mean = sample_rows(store, train_shards, cfg.modality_filter, 8192).mean(0)
        with torch.no_grad():  # start b_dec at the (scaled) data mean
            sae.b_dec.copy_(torch.from_numpy(mean * scale))
    trainer = make_trainer(cfg, sae, stream, device)  # after b_dec: the sparse engine copies it
    if ckpt is not None:
        stream.state, scale = load_checkpoint(ckpt, sae, trainer, cfg)
        log.info("resuming %s at step %d of %d", out, trainer.n_training_steps, cfg.steps)
    if isinstance(trainer, SparseTrainer):
        trainer.scale = scale
    else:
        trainer.activation_scaler.scaling_factor = scale
    start = time.time()
    stats = fit(cfg, sae, trainer, stream, scale)
    if isinstance(trainer, SparseTrainer):
        trainer.sync()
    else:
        trainer.set_final_sae_metadata()
    x, codes = eval_rows(store, eval_shards, cfg.eval_rows, cfg.seed)
    extra = {"training": {"steps": trainer.n_training_steps,
                          "samples": trainer.n_training_samples,
                          "last": stats, "dead_frac_window": float(trainer.dead_neurons.float()
                                                                   .mean()),
                          "minutes_this_run": round((time.time() - start) / 60, 2),
                          "device": str(device),
                          "precision": getattr(trainer, "precision", "saelens autocast"
                                               if device.type == "cuda" else "fp32")},
             "eval_on_training_shards": eval_shards == train_shards,
             "config": dataclasses.asdict(cfg), "metadata": metadata}
    return finish(cfg, sae, scale, x, codes, hook, backbone, extra)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sae.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, SAETrainConfig)
    cfg = config_from_args(SAETrainConfig, parser.parse_args())
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    m = train(cfg)
    print("\n" + summary(m, cfg.out_dir))


if __name__ == "__main__":
    run_cli(main)
