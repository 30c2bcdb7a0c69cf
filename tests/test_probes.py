"""Concept probes on the tiny fixtures: a real concept beats chance on held-out voices, the
shuffled-label control does not, and the outputs carry what notebooks and the dashboard read."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sae.probes import ProbeConfig, run_probes, summary
from sae.probes_data import laughter_mask


def test_laughter_mask_is_half_open_overlap():
    t0 = np.array([0.00, 0.04, 0.08, 0.12, 0.16])
    hit = laughter_mask(t0, t0 + 0.04, [(0.05, 0.12)])
    assert hit.tolist() == [False, True, True, False, False]
    assert not laughter_mask(t0, t0 + 0.04, []).any()


@pytest.fixture(scope="module")
def probes(tmp_path_factory, tiny_store, tiny_heldout_store, tiny_corpus, tiny_sae):
    out = tmp_path_factory.mktemp("probes")
    cfg = ProbeConfig(store=str(tiny_store), test_store=str(tiny_heldout_store),
                      corpus=str(tiny_corpus), sae_root=str(tiny_sae.parent), max_train=1500,
                      max_test=1500, out=str(out))
    return run_probes(cfg), out


def test_gender_probe_beats_chance_and_control_does_not(probes):
    result, _ = probes
    by = {(r["concept"], r["features"]): r for r in result["probes"] if r["layer"] == 1}
    assert {c for c, _ in by} == {"laughter", "gender", "accent", "rate"}
    assert {f for _, f in by} == {"raw", "sae"}
    g = by[("gender", "raw")]
    assert g["chance_balanced_accuracy"] == 0.5
    assert result["concepts"]["gender"]["test"]["classes"].keys() == {"male", "female"}
    assert g["balanced_accuracy"] > 0.7, g
    assert abs(g["shuffled_balanced_accuracy"] - 0.5) < 0.15, g
    for r in result["probes"]:  # every control stays well below a working probe
        assert r["shuffled_balanced_accuracy"] < r["chance_balanced_accuracy"] + 0.25, r


def test_probe_outputs(probes):
    result, out = probes
    on_disk = json.loads((out / "probes.json").read_text())
    assert on_disk["probes"] == result["probes"]
    r = result["probes"][0]
    for key in ("accuracy", "balanced_accuracy", "chance_accuracy", "chance_balanced_accuracy",
                "shuffled_accuracy", "shuffled_balanced_accuracy", "n_train", "n_test"):
        assert key in r
    assert [i["same_model"] for i in result["saes"].values()] == [True]
    html = (out / "probes.html").read_text()
    assert '<script src="https://cdn.plot.ly' not in html
    assert len(html) > 1_000_000  # plotly.js is embedded
    text = summary(result)
    assert "gender" in text and "probes.json" in text


def test_needs_held_out_voices(tmp_path, tiny_store, tiny_corpus):
    cfg = ProbeConfig(store=str(tiny_store), test_store="", corpus=str(tiny_corpus),
                      sae_root="", out=str(tmp_path))
    with pytest.raises(ValueError, match="heldout_voices"):
        run_probes(cfg)


@pytest.mark.slow
def test_cli_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sae.probes", "--store", str(tmp_path / "no"),
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no activation store")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_one_store_over_both_splits(tmp_path, tiny_corpus, tiny_tokens, tiny_tinycosy):

    from interp.cache import CacheConfig, run_cache

    store = tmp_path / "acts"
    run_cache(CacheConfig(layers="0,1", hook="resid_post",
                                   split="train,heldout_voices", max_utts=0, shard_utts=8,
                                   model=tiny_tinycosy[0], corpus=tiny_corpus,
                                   tokens=tiny_tokens, out=store))
    result = run_probes(ProbeConfig(store=str(store), test_store="", corpus=str(tiny_corpus),
                                    sae_root="", concepts=("gender",), max_train=1500,
                                    max_test=1500, out=str(tmp_path / "probes")))
    assert result["layers"] == [0, 1] and result["saes"] == {}
    g = {r["layer"]: r for r in result["probes"]}
    assert g[1]["balanced_accuracy"] > 0.7, g[1]
    assert result["concepts"]["gender"]["test"]["voices"] == 2
