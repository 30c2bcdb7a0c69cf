"""Every stage through one Backbone: the same tiny corpus run through cache → SAE → sweep →
probes → auto-interp → steering with two backbones, TinyCosy and a random-weight CosyVoice3
replica (real key and file names), as far as each can go. The replica has no waveform renderer
(no `cosyvoice` package), so the stages that must listen refuse it in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autointerp.config import AutointerpConfig
from autointerp.run import run as run_autointerp
from interp.cache import CacheConfig, run_cache
from interp.models.registry import load_backbone
from sae.config import SAETrainConfig
from sae.probes import ProbeConfig, run_probes
from sae.sweep import SweepConfig, sweep
from sae.train import train

pytestmark = pytest.mark.slow  # ~2 minutes: two whole pipelines

@pytest.fixture(scope="module")
def model(tinycosy_or_replica) -> str:
    return tinycosy_or_replica


@pytest.fixture(scope="module")
def pipeline(model, tiny_corpus, tiny_tokens, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    common = dict(model=model, corpus=str(tiny_corpus), tokens=str(tiny_tokens), shard_utts=4)
    run_cache(CacheConfig(layers="0,1", split="train", max_utts=16, out=str(root / "acts"),
                          **common))
    run_cache(CacheConfig(layers="1", split="heldout_sentences,heldout_voices",
                          out=str(root / "held"), **common))
    base = SAETrainConfig(layer=1, d_sae=32, k=4, tokens=64 * 20, batch_size=64, lr=3e-3,
                          buffer=1000, eval_frac=0.34, eval_rows=2000, eval_examples=2,
                          store=str(root / "acts"), model=model, corpus=str(tiny_corpus),
                          speech_tokens=str(tiny_tokens), device="cpu", threads=1,
                          out=str(root / "sae" / "layer_1"))
    return {"root": root, "metrics": train(base), "base": base}


def test_cache_and_sae_are_stamped_with_the_backbone(model, pipeline):
    bb = load_backbone(model, "cpu")
    meta = pipeline["metrics"]["metadata"]
    assert (meta["model_name"], meta["model"]) == (bb.name, bb.spec)
    assert meta["model_fingerprint"] == bb.fingerprint
    # spliced into the backbone (loss recovered itself is None where zeroing the layer does not
    # hurt, as on random weights)
    assert pipeline["metrics"]["loss_clean"] is not None and pipeline["metrics"]["examples"] > 0
    import json

    spec = json.loads((pipeline["root"] / "acts" / "manifest.json").read_text())["spec"]
    assert spec["model"] == bb.fingerprint and spec["d_model"] == bb.d_model


def test_sweep_probes_and_autointerp(model, pipeline, tiny_corpus):
    import dataclasses

    root, base = pipeline["root"], pipeline["base"]
    rows = sweep(dataclasses.replace(base, out=""), SweepConfig(
        layers="0,1", out=str(root / "sweep"), sae_root=str(root / "sae")))
    assert [r["layer"] for r in rows] == [0, 1]
    probes = run_probes(ProbeConfig(store=str(root / "acts"), test_store=str(root / "held"),
                                    corpus=str(tiny_corpus), model=model, layers="1",
                                    sae_root="", concepts=("gender",), max_train=500,
                                    max_test=500, out=str(root / "probes")))
    assert probes["layers"] == [1]
    summary = run_autointerp(AutointerpConfig(
        layer=1, store=str(root / "held"), sae=str(root / "sae" / "layer_1"),
        corpus=str(tiny_corpus), model=model, out=str(root / "autointerp"), n_top=4,
        n_quantile=2, n_random=2, n_score=3, n_clips=1, min_count=2, max_latents=8))
    assert summary["n_latents"] == 32


def test_steering_runs_or_refuses_in_one_line(model, pipeline, tiny_corpus):
    root = pipeline["root"]
    args = ["--concept", "gender", "--layer", "1", "--model", model, "--n", "1",
            "--strength", "2", "--k", "2", "--methods", "sae", "--sae",
            str(root / "sae" / "layer_1"), "--store", str(root / "acts"), "--corpus",
            str(tiny_corpus), "--max-positions", "300", "--out", str(root / "steer")]
    r = subprocess.run([sys.executable, "-m", "steering.run", *args], capture_output=True,
                       text=True)
    if model.startswith("cosyvoice3"):
        errors = [line for line in r.stderr.splitlines() if not line.startswith(("INFO", "DEBUG"))]
        assert r.returncode == 2 and len(errors) == 1, r.stderr
        assert errors[0].startswith("error: cannot steer") and "cosyvoice" in errors[0]
        assert not (root / "steer" / "rows.jsonl").exists()
    else:
        assert r.returncode == 0, r.stderr[-2000:]
        assert (root / "steer" / "summary.json").exists()
