"""steering.layers: the frontier at several layers on the tiny fixtures (a store holding layers 0
and 1, an SAE per layer): one folder per layer, the prompt reference once, layers.json's table
and best layer, resume, the one-line refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from steering import layers as sl
from steering.experiment import Steerer
from steering.frontier import FRONTIER
from steering.layers import LayersConfig, layer_table


def test_layer_table_picks_each_methods_best_layer():
    def fr(score_sae, score_dm):
        return {"male": {"sae": {"score": score_sae, "ci95": [0, 1], "best_strength": 1.0},
                         "diffmeans": {"score": score_dm, "ci95": None, "best_strength": 0.5}}}

    t = layer_table({12: fr(0.4, 0.7), 4: fr(0.6, 0.2), 8: fr(0.5, 0.9)})
    assert list(t["male"]["sae"]) == ["4", "8", "12", "best"]
    assert t["male"]["sae"]["best"] == {"layer": 4, "score": 0.6}
    assert t["male"]["diffmeans"]["best"] == {"layer": 8, "score": 0.9}
    assert t["male"]["diffmeans"]["12"] == {"score": 0.7, "ci95": None, "best_strength": 0.5}


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory, tiny_corpus, tiny_tokens, tiny_tinycosy, tiny_sae):
    """A store of layers 0 and 1 and an SAE root with both layers' SAEs."""
    from interp.cache import CacheConfig, run_cache
    from tests.conftest import train_tiny_sae

    root = tmp_path_factory.mktemp("layers")
    store = root / "acts"
    run_cache(CacheConfig(layers="0,1", hook="resid_post", split="train", max_utts=12,
                          shard_utts=4, model=tiny_tinycosy[0], corpus=tiny_corpus,
                          tokens=tiny_tokens, out=store))
    saes = root / "sae"
    shutil.copytree(tiny_sae, saes / "layer_1")
    train_tiny_sae(0, saes / "layer_0", store, tiny_tinycosy[0], tiny_corpus, tiny_tokens)
    return {"model": str(tiny_tinycosy[0]), "store": str(store), "sae_root": str(saes),
            "corpus": str(tiny_corpus), "k": 3, "max_positions": 400, "concept": "laughter",
            "n": 2, "strengths": "0.5", "bootstrap": 100, "layers": "0,1",
            "methods": "sae,diffmeans,prompt", "out": str(root / "out")}


@pytest.fixture(scope="module")
def result(two_layers):
    return sl.run_layers(LayersConfig(**two_layers))


def test_one_frontier_per_layer_and_the_prompt_once(result, two_layers):
    out = sl.Path(two_layers["out"])
    for layer in (0, 1):
        fr = json.loads((out / f"layer_{layer}" / FRONTIER).read_text())
        want = {"sae", "diffmeans"} | ({"prompt"} if layer == 0 else set())
        assert set(fr["laughter"]) == want
        assert result["runs"][str(layer)]["hook"] == f"blocks.{layer}.hook_resid_post"
        assert result["runs"][str(layer)]["sae"].endswith(f"layer_{layer}")
        assert result["runs"][str(layer)]["resid_norm"] > 0
    assert result["strength_units"] == "resid"


def test_layers_json_schema(result, two_layers):
    out = sl.Path(two_layers["out"])
    saved = json.loads((out / sl.LAYERS).read_text())
    table = saved["table"]["laughter"]
    for method in ("sae", "diffmeans"):
        assert set(table[method]) == {"0", "1", "best"}
        best = table[method]["best"]
        assert best["layer"] in (0, 1)
        assert best["score"] == max(table[method][L]["score"] for L in ("0", "1"))
    assert set(table["prompt"]) == {"0", "best"}
    html = (out / sl.LAYERS_FIGURE).read_text()
    assert len(html) > 1_000_000 and "frontier score" in html
    text = sl.console_table(result)
    assert "L0" in text and "L1" in text and "*" in text and "diffmeans" in text


def test_resume_makes_nothing(result, two_layers, monkeypatch):
    made = []
    monkeypatch.setattr(Steerer, "tokens", lambda self, u: made.append(u) or [])
    monkeypatch.setattr(Steerer, "tokens_batch", lambda self, us, reqs=None: made.extend(us) or [])
    again = sl.run_layers(LayersConfig(**two_layers))
    assert made == [] and again["table"] == result["table"]


def test_refusals_are_one_line(two_layers, tmp_path):
    with pytest.raises(ValueError, match=r"no SAE for layer\(s\) \[0, 1\].*sae.sweep --layers 0,1 "):
        LayersConfig(**two_layers | {"sae_root": str(tmp_path)}).validate()
    with pytest.raises(ValueError, match="--sae-root"):
        LayersConfig(**two_layers | {"sae": "x"}).validate()
    with pytest.raises(ValueError, match="comma-separated"):
        LayersConfig(**two_layers | {"layers": "a,b"}).validate()
    shutil.copytree(sl.Path(two_layers["sae_root"]) / "layer_1", tmp_path / "layer_1")
    shutil.copytree(sl.Path(two_layers["sae_root"]) / "layer_1", tmp_path / "layer_5")
    with pytest.raises(ValueError, match="layer 5"):
        LayersConfig(**two_layers | {"sae_root": str(tmp_path), "layers": "1,5"}).validate()


def test_report_shows_the_best_layer(tmp_path):
    from workbench.report import build_report, write_report

    folder = tmp_path / "layers" / "gender"
    folder.mkdir(parents=True)
    table = layer_table({4: {"male": {"sae": {"score": 0.5, "ci95": None, "best_strength": 1}}},
                         12: {"male": {"sae": {"score": 0.8, "ci95": None, "best_strength": 1}}}})
    (folder / "layers.json").write_text(json.dumps(
        {"concept": "gender", "n_items": 50, "strength_units": "resid", "table": table}))
    (folder / "layers.html").write_text("<html></html>")
    report = build_report(tmp_path)
    sec = next(s for s in report.sections if s.title.startswith("Where to steer"))
    assert sec.ran and sec.rows[0].figure == "gender → male: sae"
    assert sec.rows[0].ours == "best at layer 12: 0.800 (L4 0.500, L12 0.800; n 50)"
    _, page = write_report(report, tmp_path)
    assert 'href="layers/gender/layers.html"' in page.read_text()
