"""BatchTopK SAE training: SAELens format round trip, the BatchTopK → JumpReLU pitfall, resume after
a kill, refusal of mismatched models, metrics.json."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from sae_lens import SAE, BatchTopKTrainingSAE
from safetensors.torch import load_file

from interp.models.registry import load_backbone
from interp.models.tinycosy import TinyCosy, TinyCosyConfig
from interp.models.tinycosy_backbone import TinyCosyBackbone
from interp.store import ActivationStore
from sae import train as train_mod
from sae.checkpoint import CKPT, RUN_STATE, checkpoint_dir
from sae.config import SAETrainConfig
from sae.data import BatchStream, eval_rows, split_shards
from sae.io import load_sae
from sae.train import train

torch.set_num_threads(1)


def tiny_cfg(tmp_path, store, corpus, speech_tokens, model, **kw) -> SAETrainConfig:
    base = dict(layer=1, d_sae=64, k=4, tokens=64 * 100, batch_size=64, lr=3e-3, threshold_lr=0.3,
                dead_window=20, buffer=2000, eval_frac=0.34, eval_rows=5000, eval_examples=4,
                ckpt_every=10, out=str(tmp_path / "sae"), store=str(store), model=str(model),
                corpus=str(corpus), speech_tokens=str(speech_tokens), device="cpu", threads=1)
    return SAETrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy):
    cfg = tiny_cfg(tmp_path_factory.mktemp("sae_run"), tiny_store, tiny_corpus, tiny_tokens,
                   tiny_tinycosy[0])
    return cfg, train(cfg)


def _jumprelu_reference(sae: BatchTopKTrainingSAE, x: torch.Tensor, scale: float) -> torch.Tensor:
    """What the training SAE, run as a JumpReLU at its own threshold on scaled inputs, gives back
    in raw units: the saved SAE must reproduce it exactly on raw inputs."""
    norm = sae.W_dec.norm(dim=-1)
    pre = ((x * scale - sae.b_dec) @ sae.W_enc + sae.b_enc) * norm
    acts = pre * (pre > sae.topk_threshold.float())
    return ((acts / norm) @ sae.W_dec + sae.b_dec) / scale


def test_saved_sae_loads_and_matches_training(trained):
    cfg, m = trained
    loaded = SAE.load_from_disk(cfg.out_dir)
    assert type(loaded).__name__ == "JumpReLUSAE" and loaded.cfg.d_in == 32
    meta = loaded.cfg.metadata
    assert meta.hook_name == "blocks.1.hook_resid_post" and meta.norm_scale == m["norm_scale"]
    assert meta.model_fingerprint and meta.model_digest
    # the exact check: folding the norm scale kept the threshold in the right units
    train_sae = BatchTopKTrainingSAE.load_from_disk(cfg.out_dir / CKPT)
    store = ActivationStore(cfg.store, cfg.layer)
    x, _ = eval_rows(store, split_shards(store, cfg.eval_frac)[1], 2000)
    with torch.no_grad():
        got = loaded.decode(loaded.encode(x))
        want = _jumprelu_reference(train_sae, x, m["norm_scale"])
    assert torch.allclose(got, want, atol=1e-4 * float(x.abs().max()))
    # and the statistical one: L0 and explained variance of loaded ≈ training (BatchTopK)
    p = m["pitfall_check"]
    assert p["ok"], p
    assert abs(p["inference_l0"] - cfg.k) / cfg.k < 0.25
    assert p["inference_explained_variance"] > p["training_explained_variance"] - 0.02


def test_metrics_json_keys_and_ranges(trained):
    cfg, m = trained
    on_disk = json.loads((cfg.out_dir / "metrics.json").read_text())
    assert on_disk["explained_variance"] == pytest.approx(m["explained_variance"])
    for key in ("explained_variance", "explained_variance_text", "explained_variance_speech",
                "l0", "dead_frac", "dense_frac", "loss_clean", "loss_spliced", "loss_zero",
                "loss_recovered", "norm_scale", "pitfall_check", "training"):
        assert key in m, key
    assert 0.3 < m["explained_variance"] <= 1 and 0 < m["l0"] < cfg.d_sae
    assert 0 <= m["dead_frac"] <= 1 and 0 <= m["dense_frac"] <= 1
    assert m["positions_speech"] > 0 and m["positions_text"] > 0
    assert m["examples"] > 0 and all(math.isfinite(m[k]) for k in
                                     ("loss_clean", "loss_spliced", "loss_zero"))
    assert m["loss_recovered"] is None or math.isfinite(m["loss_recovered"])
    assert m["training"]["steps"] == cfg.steps and not m["eval_on_training_shards"]
    # running the finished command again only reports it
    assert train(cfg)["training"] == m["training"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sparse", "saelens"])
def test_resume_after_kill_continues_identically(tmp_path, tiny_store, tiny_corpus, tiny_tokens,
                                                  tiny_tinycosy, monkeypatch, engine):
    cfg = tiny_cfg(tmp_path / "a", tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0],
                   tokens=64 * 30, eval_examples=0, engine=engine)
    straight = train(cfg)
    cfg_b = replace(cfg, out=str(tmp_path / "b" / "sae"))
    real_next, calls = BatchStream.__next__, {"n": 0}

    def dying_next(self):
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return real_next(self)

    monkeypatch.setattr(BatchStream, "__next__", dying_next)
    with pytest.raises(KeyboardInterrupt):
        train(cfg_b)
    state = json.loads((cfg_b.out_dir / CKPT / RUN_STATE).read_text())
    assert state["step"] == 20  # the last whole checkpoint; step 26 was cut mid-way
    monkeypatch.setattr(BatchStream, "__next__", real_next)
    resumed = train(cfg_b)
    assert resumed["training"]["steps"] == straight["training"]["steps"] == 30
    assert resumed["training"]["samples"] == 30 * 64
    a = load_file(cfg.out_dir / "sae_weights.safetensors")
    b = load_file(cfg_b.out_dir / "sae_weights.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    # a run with other settings in the same folder is refused, not mixed in
    with pytest.raises(ValueError, match="other settings"):
        train(replace(cfg_b, k=8))
    other = "saelens" if engine == "sparse" else "sparse"
    with pytest.raises(ValueError, match=f"engine '{engine}' → '{other}'"):
        train(replace(cfg_b, engine=other))


def test_interrupted_checkpoint_swap_is_repaired(tmp_path):
    out = tmp_path / "sae"
    (out / f"{CKPT}.old").mkdir(parents=True)
    (out / f"{CKPT}.old" / RUN_STATE).write_text("{}")
    assert checkpoint_dir(out) == out / CKPT and (out / CKPT / RUN_STATE).exists()


def test_stream_resumes_at_the_same_batch(tiny_store):
    store = ActivationStore(tiny_store, 1)
    shards = split_shards(store, 0.34)[0]
    a = BatchStream(store, shards, 32, "speech", buffer=300, seed=3)
    first = [next(a) for _ in range(40)]  # several chunks and epochs
    b = BatchStream(store, shards, 32, "speech", buffer=300, seed=3)
    for _ in range(17):
        next(b)
    c = BatchStream(store, shards, 32, "speech", buffer=300, seed=3, state=b.state)
    assert all(torch.equal(x, y) for x, y in zip(first[17:], [next(c) for _ in range(23)],
                                                 strict=True))
    with pytest.raises(ValueError, match="fewer than --batch-size"):
        next(BatchStream(store, shards, 10**6, None, buffer=300))


def test_mismatched_model_and_hook_are_refused(trained, tiny_tinycosy):
    cfg, _ = trained
    model = TinyCosy.load(tiny_tinycosy[0])
    sae = load_sae(cfg.out_dir, TinyCosyBackbone(model), "blocks.1.hook_resid_post")
    assert sae.cfg.d_in == 32
    narrow = TinyCosy(TinyCosyConfig(n_layers=2, hidden=16, n_heads=2, n_kv_heads=1, mlp=32,
                                     text_vocab=300, speech_codes=64))
    with pytest.raises(ValueError, match="d_in 32") as err:
        load_sae(cfg.out_dir, TinyCosyBackbone(narrow))
    assert "\n" not in str(err.value)
    assert str(err.value).endswith(f"it was trained with --model tinycosy:{tiny_tinycosy[0]}")
    with torch.no_grad():
        model.speech_embedding.weight.add_(1.0)
    with pytest.raises(ValueError, match="other weights"):
        load_sae(cfg.out_dir, TinyCosyBackbone(model))
    with pytest.raises(ValueError, match="trained on model"):
        load_sae(cfg.out_dir, TinyCosyBackbone(TinyCosy.load(tiny_tinycosy[0]), name="cosyvoice3"))
    with pytest.raises(ValueError, match="cannot be used at blocks.0"):
        load_sae(cfg.out_dir, hook="blocks.0.hook_resid_post")


def test_store_of_another_model_is_refused(tmp_path, tiny_store, tiny_corpus, tiny_tokens,
                                           tiny_tinycosy):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_tinycosy[0], other)
    model = TinyCosy.load(other)
    with torch.no_grad():
        model.speech_embedding.weight.add_(1.0)
    model.save(other)
    cfg = tiny_cfg(tmp_path, tiny_store, tiny_corpus, tiny_tokens, other)
    with pytest.raises(ValueError, match="another model"):
        train_mod.open_store(cfg, "hook_resid_post", load_backbone(str(other), "cpu"))
    with pytest.raises(ValueError, match="another model"):
        train_mod.train(cfg)


def test_fold_keeps_threshold_units_even_on_old_sae_lens(trained, monkeypatch):
    """The DESIGN pitfall, forced: SAELens before #763 folded the norm scale into the weights but
    not into the BatchTopK threshold. `fold_norm_scale` must give the right SAE either way."""
    import copy

    from sae_lens.saes.topk_sae import TopKTrainingSAE

    from sae.io import fold_norm_scale

    cfg, _ = trained
    sae = BatchTopKTrainingSAE.load_from_disk(cfg.out_dir / CKPT)
    store = ActivationStore(cfg.store, cfg.layer)
    x, _ = eval_rows(store, split_shards(store, cfg.eval_frac)[1], 2000)
    scale = 3.0  # far from 1, so a threshold in the wrong units shows
    want = _jumprelu_reference(sae, x, scale)

    def l0_and_recon(folded):
        norm = folded.W_dec.norm(dim=-1)
        pre = ((x - folded.b_dec) @ folded.W_enc + folded.b_enc) * norm
        acts = pre * (pre > folded.topk_threshold.float())
        return float((acts > 0).sum(-1).float().mean()), (acts / norm) @ folded.W_dec + folded.b_dec

    with torch.no_grad():
        good = copy.deepcopy(sae)
        fold_norm_scale(good, scale)
        l0_good, got = l0_and_recon(good)
        assert torch.allclose(got, want, atol=1e-4 * float(x.abs().max()))
        monkeypatch.setattr(BatchTopKTrainingSAE, "fold_activation_norm_scaling_factor",
                            TopKTrainingSAE.fold_activation_norm_scaling_factor)  # the old one
        broken = copy.deepcopy(sae)
        broken.fold_activation_norm_scaling_factor(scale)
        l0_broken, _ = l0_and_recon(broken)
        assert l0_broken < 0.7 * l0_good  # the pitfall is real: L0 collapses
        repaired = copy.deepcopy(sae)
        fold_norm_scale(repaired, scale)
        assert torch.allclose(l0_and_recon(repaired)[1], want, atol=1e-4 * float(x.abs().max()))


@pytest.mark.slow
def test_help_and_bad_flags(monkeypatch, capsys):
    proc = subprocess.run([sys.executable, "-m", "sae.train", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0
    for flag in ("--d-sae", "--k", "--tokens", "--lr", "--batch-size", "--hook", "--modality",
                 "--seed", "--out", "--store", "--model"):
        assert flag in proc.stdout
    import signal

    from interp.cli import run_cli

    monkeypatch.setattr(sys, "argv", ["sae.train", "--modality", "audio"])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(train_mod.main)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("error: --modality")


def _same_weights(a_dir, b_dir) -> None:
    a = load_file(a_dir / "sae_weights.safetensors")
    b = load_file(b_dir / "sae_weights.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_sigterm_checkpoints_the_step_in_progress(tmp_path, tiny_store, tiny_corpus, tiny_tokens,
                                                  tiny_tinycosy, monkeypatch):
    """The issue's failure 3: the handler skipped the checkpoint whenever a step was running."""
    import os
    import signal

    from interp.cli import StageInterrupted

    cfg = tiny_cfg(tmp_path / "a", tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0],
                   tokens=64 * 30, eval_examples=0)
    straight = train(cfg)
    cfg_b = replace(cfg, out=str(tmp_path / "b" / "sae"))
    real_next, calls = BatchStream.__next__, {"n": 0}

    def signalling_next(self):
        calls["n"] += 1
        if calls["n"] == 14:  # SIGTERM lands in the middle of step 14
            os.kill(os.getpid(), signal.SIGTERM)
        return real_next(self)

    monkeypatch.setattr(BatchStream, "__next__", signalling_next)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StageInterrupted, match=r"checkpoint at step 14 of 30 kept in .*checkpoint"):
        train(cfg_b)
    assert signal.getsignal(signal.SIGTERM) is handler  # the stage's own handler is gone again
    assert json.loads((cfg_b.out_dir / CKPT / RUN_STATE).read_text())["step"] == 14
    monkeypatch.setattr(BatchStream, "__next__", real_next)
    resumed = train(cfg_b)
    assert resumed["training"]["steps"] == straight["training"]["steps"] == 30
    _same_weights(cfg.out_dir, cfg_b.out_dir)


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_store, tiny_corpus,
                                                        tiny_tokens, tiny_tinycosy):
    import dataclasses
    import os
    import signal
    import time

    cfg = tiny_cfg(tmp_path / "a", tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0],
                   tokens=64 * 400, eval_examples=0, ckpt_every=5)
    killed = replace(cfg, out=str(tmp_path / "b" / "sae"))
    argv = [f"--{f.name.replace('_', '-')}={getattr(killed, f.name)}"
            for f in dataclasses.fields(killed)]
    proc = subprocess.Popen([sys.executable, "-m", "sae.train", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    state = killed.out_dir / CKPT / RUN_STATE
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not state.exists():
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    step = json.loads(state.read_text())["step"]
    assert 0 < step < 400 and not (killed.out_dir / "sae_weights.safetensors").exists()
    resumed = train(killed)
    straight = train(cfg)
    assert resumed["training"]["steps"] == straight["training"]["steps"] == 400
    _same_weights(cfg.out_dir, killed.out_dir)
