"""The benchmark command runs (a smoke run; its figures are not asserted: timings live in
benchmarks, never in tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
# many multi-threaded subprocesses: beside the other test worker it takes 3-4x its ~80 s alone
@pytest.mark.timeout(1500)
def test_benchmarks_quick(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert set(r["capture"]["tokens_per_s"]) == {"bare", "layer_12", "all_layers"}
    assert r["capture"]["bytes_per_token"]["all_layers"] > r["capture"]["bytes_per_token"]["layer_12"]
    assert set(r["capture"]["batched"]["utts_per_s"]) == {
        "one_per_forward_full", "one_per_forward", "batched", "batched_full", "bare_batched",
        "batched_all_layers"}
    t = r["tinycosy_training"]
    # the counted FLOPs of a training step agree with 6 · (non-embedding weights) · tokens, plus
    # attention: the counter sees every matmul of forward and backward
    per_layer = 2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 512
    dense = 6 * 24 * per_layer * t["padded_tokens_per_step"] / 1e9
    assert dense < t["gflop_per_step"] < 1.3 * dense
    assert t["lineage_steps"] > 0 and t["steps_in_budget"] > 0
    assert t["recipe"]["attn_guide"] > 0  # the shipped recipe, read from its train.json
    assert set(t["seconds_per_step"]) == {"recipe_step", "plain_step", "forward_only", "bf16_step"}
    assert t["fastest"] in t["lineage_hours"] and "bf16_step" in t["speedup_over_recipe_step"]
    m = r["training_memory"]  # each variant in its own process, its RSS sampled
    assert {"fp32", "bf16", "bf16_pad64"} <= set(m["variants"])
    assert all(v["rss_gb"][-1]["step"] == 2 and v["rss_gb"][-1]["rss_gb"] > 0.1
               for v in m["variants"].values())


def test_batched_capture_benchmark_smoke(tmp_path):
    """Batched vs one-per-forward caching runs through the store writer (figures not asserted)."""
    from benchmarks.capture import batch_sweep, batched, utterances

    r = batched(n_utts=6, batch_size=4, repeats=1, device="cpu")
    assert set(r["utts_per_s"]) == {"one_per_forward_full", "one_per_forward", "batched",
                                    "batched_full", "bare_batched", "batched_all_layers"}
    assert r["speedup_stop_early"] > 0 and isinstance(r["goal_met_vs_one_full_forward"], bool)
    assert r["batch_size"] == 4 and 0 < r["padding_frac"] < 1 and isinstance(r["goal_met"], bool)
    half = batched(n_utts=4, batch_size=4, repeats=1, device="cpu", dtype="bf16")
    assert "one_per_forward_fp32" in half["utts_per_s"] and half["speedup_vs_one_fp32"] > 0
    sweep = batch_sweep(n_utts=4, sizes=(1, 2), dtypes=("fp32", "bf16"), repeats=1)
    assert set(sweep["utts_per_s"]) == {"fp32@1", "fp32@2", "bf16@1", "bf16@2"}
    assert sweep["fastest"] in sweep["utts_per_s"] and sweep["fastest_vs_one_fp32"] >= 1
    a, b = utterances(6, 64), utterances(6, 64)  # seeded: every variant sees the same utterances
    assert all(x[0].target.equal(y[0].target) for x, y in zip(a, b, strict=True))


def test_steering_benchmark_smoke():
    """Both parts share one set-up; batched steered tokens equal the one-by-one ones."""
    from benchmarks.steering import run_batched, run_unbatched

    u = run_unbatched(n_seqs=2, n_tokens=8, repeats=1)
    assert set(u["tokens_per_s"]) == {"unsteered", "sae_edit", "direction"}
    assert len(set(u["tokens"].values())) == 1  # every variant makes the same number of tokens
    b = run_batched(n_seqs=2, n_tokens=8, repeats=1, batch=2)
    assert b["same_tokens"] is True and b["batch"] == 2
