"""Layer sweep: modality composition of latents, and sweep.json/html over two layers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sae_lens import JumpReLUSAE
from sae_lens.saes.jumprelu_sae import JumpReLUSAEConfig

from interp.cache import CacheConfig, run_cache
from interp.store import MODALITY_CODES
from sae.config import SAETrainConfig
from sae.sweep import SweepConfig, modality_composition, sweep

torch.set_num_threads(1)


def test_modality_composition_follows_the_papers_rule():
    """Latent 0 reads dim 0 (set on speech rows), latent 1 dim 1 (text rows), latent 2 both,
    latent 3 nothing."""
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=2, d_sae=4))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 0]]))
        sae.W_dec.zero_()
        sae.b_dec.zero_()
    sp, tx = MODALITY_CODES["speech"], MODALITY_CODES["text"]
    codes = np.array([sp] * 30 + [tx] * 30 + [MODALITY_CODES["special"]] * 5)
    x = torch.zeros(len(codes), 2)
    x[codes == sp, 0] = torch.linspace(1, 2, 30)
    x[codes == tx, 1] = torch.linspace(1, 2, 30)
    x[codes == MODALITY_CODES["special"]] = 100.0  # special positions never compete
    m = modality_composition(sae, x, codes, top=40, min_active=5)
    assert m["audio_frac"] == m["text_frac"] == m["mixed_frac"] == m["inactive_frac"] == 0.25
    assert m["speech_frac_of_top"] == [1.0, 0.0, 0.5, None]


def test_sweep_writes_json_and_html(tmp_path, tiny_corpus, tiny_tokens, tiny_tinycosy):
    store = tmp_path / "acts"
    run_cache(CacheConfig(layers="0,1", hook="resid_post", split="train", max_utts=8,
                                   shard_utts=4, model=tiny_tinycosy[0], corpus=tiny_corpus,
                                   tokens=tiny_tokens, out=store))
    base = SAETrainConfig(d_sae=32, k=4, tokens=64 * 20, batch_size=64, lr=3e-3, buffer=1000,
                          eval_frac=0.5, eval_rows=2000, eval_examples=2, store=str(store),
                          model=str(tiny_tinycosy[0]), corpus=str(tiny_corpus),
                          speech_tokens=str(tiny_tokens), device="cpu", threads=1)
    sc = SweepConfig(layers="0-1", out=str(tmp_path / "sweep"), sae_root=str(tmp_path / "sae"),
                     top=20, min_active=2)
    rows = sweep(base, sc)
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["layer"] for r in saved["layers"]] == [0, 1] == [r["layer"] for r in rows]
    for r in rows:
        assert (tmp_path / "sae" / f"layer_{r['layer']}" / "cfg.json").exists()
        assert 0 < r["explained_variance"] <= 1 and r["l0"] > 0
        total = r["audio_frac"] + r["text_frac"] + r["mixed_frac"] + r["inactive_frac"]
        assert abs(total - 1) < 1e-6 and len(r["speech_frac_of_top"]) == 32
    assert (tmp_path / "sweep" / "sweep.html").stat().st_size > 10_000


def test_sweep_refuses_a_store_without_its_layers(tmp_path, tiny_tinycosy):
    (tmp_path / "acts").mkdir()
    (tmp_path / "acts" / "manifest.json").write_text(json.dumps({"spec": {"layers": [1]}}))
    base = SAETrainConfig(store=str(tmp_path / "acts"), model=str(tiny_tinycosy[0]))
    with pytest.raises(ValueError, match=r"caches layers \[1\], not \[0\]"):
        sweep(base, SweepConfig(layers="0-1", out=str(tmp_path / "sweep")))


@pytest.mark.slow
def test_torchrun_two_ranks_split_the_layers(tmp_path, tiny_corpus, tiny_tokens, tiny_tinycosy):
    """Two CPU processes (gloo): the cache is split across ranks, each rank trains one layer,
    rank 0 writes the sweep of both."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29541", "-m", "sae.sweep", "--layers", "0,1",
           "--out", str(tmp_path / "sweep"), "--sae-root", str(tmp_path / "sae"),
           "--top", "20", "--min-active", "2", "--d-sae", "32", "--k", "4",
           "--tokens", str(64 * 10), "--batch-size", "64", "--buffer", "1000",
           "--eval-frac", "0.5", "--eval-rows", "2000", "--eval-examples", "0",
           "--store", str(tmp_path / "acts"), "--model", str(tiny_tinycosy[0]),
           "--corpus", str(tiny_corpus), "--speech-tokens", str(tiny_tokens),
           "--device", "cpu", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["layer"] for r in saved["layers"]] == [0, 1]
    for layer in (0, 1):
        trained = json.loads((tmp_path / "sae" / f"layer_{layer}" / "metrics.json").read_text())
        assert trained["training"]["steps"] == 10


def test_modality_rule_is_one_definition():
    from autointerp.config import AutointerpConfig
    from sae.modality import AUDIO_MIN, TEXT_MAX, modality_tag

    assert [modality_tag(f) for f in (0.81, 0.8, 0.5, 0.2, 0.19)] == [
        "audio", "mixed", "mixed", "mixed", "text"]
    cfg = AutointerpConfig()
    assert (cfg.audio_threshold, cfg.text_threshold) == (AUDIO_MIN, TEXT_MAX)
