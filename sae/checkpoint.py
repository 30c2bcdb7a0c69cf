"""Training checkpoints: SAELens's own training files plus where the data stream stands.

`<out>/checkpoint/` holds `cfg.json` + `sae_weights.safetensors` (the *training* SAE, SAELens's
`save_model`), the step engine's state (`engine_state.pt` of `sae.engine.SparseTrainer`, or
SAELens's `trainer_state.pt` + `activation_scaler.json`: optimizer, learning-rate schedule, step
and sample counts, dead-latent statistics) and `run_state.json` (our data-stream position and run settings). It is written to
`checkpoint.tmp/` and swapped in by renames, so a kill at any moment leaves a whole checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from sae_lens import BatchTopKTrainingSAE
from sae_lens.training.sae_trainer import SAETrainer

from sae.config import SAETrainConfig
from sae.data import StreamState
from sae.engine import SparseTrainer

CKPT, RUN_STATE = "checkpoint", "run_state.json"


def checkpoint_dir(out: Path) -> Path | None:
    """The last whole checkpoint, repairing a swap that a kill interrupted."""
    final, old = out / CKPT, out / f"{CKPT}.old"
    if not (final / RUN_STATE).exists() and (old / RUN_STATE).exists():
        shutil.rmtree(final, ignore_errors=True)
        os.replace(old, final)
    return final if (final / RUN_STATE).exists() else None


def save_checkpoint(out: Path, sae: BatchTopKTrainingSAE, trainer: SAETrainer | SparseTrainer,
                    stream: StreamState, scale: float, cfg: SAETrainConfig) -> None:
    tmp, final, old = out / f"{CKPT}.tmp", out / CKPT, out / f"{CKPT}.old"
    checkpoint_dir(out)  # finish a swap a kill interrupted, so `old` never holds the only copy
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainer.save_trainer_state(tmp)  # first: the sparse engine syncs its weights into `sae` here
    sae.save_model(tmp)
    state = {"step": trainer.n_training_steps, "stream": asdict(stream), "norm_scale": scale,
             "config": cfg.identity()}
    (tmp / RUN_STATE).write_text(json.dumps(state, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def read_run_state(folder: Path, cfg: SAETrainConfig) -> dict:
    """The checkpoint's run state; a run with other settings is refused, not silently mixed."""
    state = json.loads((folder / RUN_STATE).read_text())
    state["config"].setdefault("engine", "saelens")  # runs from before the sparse engine
    state["config"].setdefault("architecture", "batchtopk")  # and before Matryoshka
    state["config"].setdefault("matryoshka_widths", "")
    mine = cfg.identity()
    diff = {k: (v, mine.get(k)) for k, v in state["config"].items() if mine.get(k) != v}
    if diff:
        shown = ", ".join(f"{k} {old!r} → {new!r}" for k, (old, new) in diff.items())
        raise ValueError(f"{folder.parent} holds a run with other settings ({shown}); use another "
                         "--out, or delete it to start over")
    return state


def load_checkpoint(folder: Path, sae: BatchTopKTrainingSAE, trainer: SAETrainer | SparseTrainer,
                    cfg: SAETrainConfig) -> tuple[StreamState, float]:
    """Restore the SAE and trainer in place; returns (stream position, norm scale)."""
    state = read_run_state(folder, cfg)
    sae.load_weights_from_checkpoint(folder)
    trainer.load_trainer_state(folder)
    if trainer.n_training_steps != state["step"]:
        raise ValueError(f"{folder} is inconsistent (trainer step {trainer.n_training_steps}, "
                         f"run state step {state['step']}); delete it to start over")
    return StreamState(**state["stream"]), float(state["norm_scale"])
