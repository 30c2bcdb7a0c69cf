"""The SAE-training benchmark runs at a toy size and reports both trainers side by side (its
timings are not asserted: they live in benchmarks, never in tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from benchmarks import sae_training
from benchmarks.sae_training import SAEBenchConfig, run

FIGURES = {"trainer", "seconds", "tokens_per_s", "fvu", "l0", "never_fired_frac"}
HAS_SPARSIFY = importlib.util.find_spec("sparsify") is not None


def check(r: dict, steps: int, k: int) -> None:
    assert r["steps"] == steps
    assert set(r["ours"]) == FIGURES | {"tflops", "precision"} and r["ours"]["tflops"] > 0
    assert r["ours"]["precision"] == "fp32"  # auto on a CPU
    assert set(r["ours_saelens_engine"]) == FIGURES
    for name in ("ours", "ours_saelens_engine"):
        assert r[name]["tokens_per_s"] > 0 and 0 <= r[name]["fvu"] < 1.5
        assert r[name]["l0"] <= 2 * k
    assert r["sparse_vs_saelens_engine_tokens_per_s"] > 0
    if HAS_SPARSIFY:
        assert set(r["sparsify"]) == FIGURES
        assert r["sparsify"]["l0"] <= k
        assert r["ours_vs_sparsify_tokens_per_s"] > 0
        assert "fvu_ours_minus_sparsify" in r
    else:
        assert "eai-sparsify" in r["sparsify"]["error"]


def test_toy_run_on_synthetic_data(monkeypatch):
    monkeypatch.setattr(sae_training, "STORES", ())  # no store: synthetic activations
    r = run(SAEBenchConfig(d_sae=64, k=4, batch_size=64, tokens=64 * 6, eval_rows=256,
                                repeats=1))
    assert r["data"] == "synthetic" and r["d_in"] == 128
    check(r, steps=6, k=4)


@pytest.mark.slow
def test_cli_on_a_store_merges_into_results(tmp_path, tiny_store):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"capture": {"kept": True}}))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.sae_training", "--store", str(tiny_store),
         "--layer", "1", "--d-sae", "64", "--k", "4", "--batch-size", "64", "--tokens", "640",
         "--eval-rows", "500", "--repeats", "1", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["capture"] == {"kept": True}
    assert r["sae_training"]["data"].endswith("layer 1") and r["sae_training"]["d_in"] == 32
    check(r["sae_training"], steps=10, k=4)
    assert "tokens/s" in proc.stdout
