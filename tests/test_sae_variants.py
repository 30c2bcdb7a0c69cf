"""SAE variants and the metrics that judge them: Matryoshka BatchTopK trains, saves and loads as
the same SAELens SAE and its prefixes reconstruct; a speech-only SAE sees only speech positions;
absorption counts the latents a concept is spread over; seed stability is 1 against itself and
~0 against a random SAE; the sweep writes all of it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sae_lens import SAE, MatryoshkaBatchTopKTrainingSAE

from interp.store import MODALITY_CODES, ActivationStore, modality_mask
from sae.checkpoint import CKPT, RUN_STATE
from sae.compare import CompareConfig, run_compare, table
from sae.config import SAETrainConfig
from sae.data import eval_rows, shard_rows, split_shards
from sae.engine import SparseTrainer
from sae.io import load_sae
from sae.latent_stats import LatentStats
from sae.metrics import prefix_explained_variance
from sae.planted import absorption, absorption_count, auroc, auroc_above_zero
from sae.stability import decoder_stability
from sae.sweep import SweepConfig, sweep
from sae.train import train

torch.set_num_threads(1)

WIDTHS = "8,24"


def tiny_cfg(tmp_path, store, corpus, speech_tokens, model, **kw) -> SAETrainConfig:
    base = dict(layer=1, d_sae=64, k=4, tokens=64 * 100, batch_size=64, lr=3e-3, threshold_lr=0.3,
                dead_window=20, buffer=2000, eval_frac=0.34, eval_rows=5000, eval_examples=0,
                ckpt_every=50, out=str(tmp_path / "sae"), store=str(store), model=str(model),
                corpus=str(corpus), speech_tokens=str(speech_tokens), device="cpu", threads=1)
    return SAETrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy):
    """A Matryoshka SAE and a BatchTopK SAE trained alike on the tiny store."""
    root = tmp_path_factory.mktemp("variants")
    args = (tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0])
    mat = tiny_cfg(root / "m", *args, architecture="matryoshka", matryoshka_widths=WIDTHS)
    top = tiny_cfg(root / "b", *args)
    return (mat, train(mat)), (top, train(top))


def test_matryoshka_saves_a_loadable_jumprelu_sae(pair, tiny_tinycosy):
    (cfg, m), _ = pair
    assert cfg.widths == (8, 24, 64)
    sae = load_sae(cfg.out_dir, hook="blocks.1.hook_resid_post")  # the project's loader
    assert type(sae).__name__ == "JumpReLUSAE" and sae.cfg.d_sae == 64
    meta = sae.cfg.metadata
    assert meta.architecture == "matryoshka" and list(meta.matryoshka_widths) == [8, 24, 64]
    assert m["architecture"] == "matryoshka" and m["pitfall_check"]["ok"], m["pitfall_check"]
    assert m["training"]["steps"] == cfg.steps and 0.3 < m["explained_variance"] <= 1
    # the checkpoint is SAELens's Matryoshka training SAE, with its widths
    ckpt = json.loads((cfg.out_dir / CKPT / "cfg.json").read_text())
    assert ckpt["architecture"] == "matryoshka_batchtopk"
    assert ckpt["matryoshka_widths"] == [8, 24, 64]
    assert isinstance(MatryoshkaBatchTopKTrainingSAE.load_from_disk(cfg.out_dir / CKPT),
                      MatryoshkaBatchTopKTrainingSAE)


def test_another_architecture_is_not_mixed_into_a_finished_run(pair):
    _, (top, _) = pair
    with pytest.raises(ValueError, match="architecture 'batchtopk' → 'matryoshka'"):
        train(replace(top, architecture="matryoshka", matryoshka_widths=WIDTHS))
    # a checkpoint from before the flag counts as BatchTopK
    path = top.out_dir / CKPT / RUN_STATE
    state = json.loads(path.read_text())
    for key in ("architecture", "matryoshka_widths"):
        del state["config"][key]
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="architecture 'batchtopk' → 'matryoshka'"):
        train(replace(top, architecture="matryoshka", matryoshka_widths=WIDTHS))


def test_matryoshka_prefixes_reconstruct(pair):
    """Each prefix alone explains much of the variance, and far more than the same first
    latents of a BatchTopK SAE trained alike (whose latents are in no order)."""
    (mat, m), (top, _) = pair
    prefix = m["prefix_explained_variance"]
    assert list(prefix) == ["8", "24", "64"]
    assert prefix["64"] == pytest.approx(m["explained_variance"], abs=1e-6)
    assert prefix["8"] < prefix["24"] < prefix["64"] and prefix["8"] > 0.15, prefix
    store = ActivationStore(top.store, top.layer)
    x, _ = eval_rows(store, split_shards(store, top.eval_frac)[1], 5000)
    plain = prefix_explained_variance(SAE.load_from_disk(str(top.out_dir)), x, (8, 24))
    assert prefix["8"] > 1.5 * plain["8"] and prefix["24"] > 1.3 * plain["24"], (prefix, plain)


def test_saelens_engine_trains_matryoshka_too(tmp_path, tiny_store, tiny_corpus, tiny_tokens,
                                              tiny_tinycosy):
    cfg = tiny_cfg(tmp_path, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0],
                   engine="saelens", architecture="matryoshka", matryoshka_widths=WIDTHS,
                   tokens=64 * 10)
    m = train(cfg)
    assert m["training"]["steps"] == 10 and set(m["prefix_explained_variance"]) == {
        "8", "24", "64"}
    assert type(load_sae(cfg.out_dir)).__name__ == "JumpReLUSAE"


def test_speech_sae_trains_and_is_measured_on_speech_only(tmp_path, tiny_store, tiny_corpus,
                                                         tiny_tokens, tiny_tinycosy, monkeypatch):
    cfg = tiny_cfg(tmp_path, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0],
                   modality="speech", tokens=64 * 20)
    store = ActivationStore(tiny_store, 1)
    codes = {}
    for shard in store.shards:
        acts, mods = shard_rows(store, shard, None)
        for row, mod in zip(acts, mods, strict=True):
            codes[row.tobytes()] = int(mod)
    seen = []
    real_step = SparseTrainer.step

    def spy(self, x):
        seen.append(x.clone())
        return real_step(self, x)

    monkeypatch.setattr(SparseTrainer, "step", spy)
    m = train(cfg)
    rows = torch.cat(seen).numpy()
    assert len(rows) == cfg.steps * cfg.batch_size
    assert {codes[r.tobytes()] for r in rows} == {MODALITY_CODES["speech"]}
    assert m["modality"] == "speech" and m["positions"] == m["positions_speech"] > 0
    assert m["positions_text"] == 0 and m["explained_variance_text"] is None
    assert m["explained_variance"] == pytest.approx(m["explained_variance_speech"])
    assert load_sae(cfg.out_dir).cfg.metadata.modality == "speech"


def test_text_and_speech_sae_sized_from_the_width_leaves_special_positions_out(
        tmp_path, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy, monkeypatch):
    # What a real backbone gets by default (--modality auto), with d_sae and k from its width.
    cfg = tiny_cfg(tmp_path, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy[0],
                   modality="text+speech", d_sae=0, k=0, tokens=64 * 10)
    store = ActivationStore(tiny_store, 1)
    specials = {r.tobytes() for s in store.shards
                for r in shard_rows(store, s, "special")[0]}
    assert specials
    seen = []
    real_step = SparseTrainer.step
    monkeypatch.setattr(SparseTrainer, "step",
                        lambda self, x: seen.append(x.clone()) or real_step(self, x))
    m = train(cfg)
    assert not {r.tobytes() for r in torch.cat(seen).numpy()} & specials
    sized = cfg.sized(store.d_model)
    assert (m["d_sae"], m["k"]) == (sized.d_sae, sized.k) and sized.d_sae >= 16 * store.d_model
    assert m["positions"] == m["positions_text"] + m["positions_speech"]


def test_defaults_scale_with_the_backbone():
    assert (SAETrainConfig().sized(128).d_sae, SAETrainConfig().sized(128).k) == (2048, 16)
    assert (SAETrainConfig().sized(896).d_sae, SAETrainConfig().sized(896).k) == (16384, 50)
    assert SAETrainConfig(d_sae=512, k=8).sized(896).d_sae == 512
    assert SAETrainConfig().modality == "all"  # the embedded models keep sos/task_id
    assert SAETrainConfig(model="cosyvoice3:/ckpt").modality == "text+speech"
    assert SAETrainConfig(model="cosyvoice3:/ckpt", modality="all").modality == "all"
    with pytest.raises(ValueError, match="use one of"):
        modality_mask(np.array([0, 1, 2]), "speech+noise")
    assert modality_mask(np.array([0, 1, 2]), "text+speech").tolist() == [True, True, False]


def test_bad_variant_flags_are_one_line_errors():
    with pytest.raises(ValueError, match="--architecture 'topk'"):
        SAETrainConfig(architecture="topk")
    with pytest.raises(ValueError, match="needs --architecture matryoshka"):
        SAETrainConfig(matryoshka_widths="8,24")
    with pytest.raises(ValueError, match="must increase"):
        SAETrainConfig(architecture="matryoshka", matryoshka_widths="512,128")
    with pytest.raises(ValueError, match="at least one prefix"):
        SAETrainConfig(architecture="matryoshka", matryoshka_widths="2048", d_sae=2048)
    assert SAETrainConfig(architecture="matryoshka", d_sae=2048).widths == (128, 512, 2048)
    assert SAETrainConfig(architecture="matryoshka").sized(128).widths == (128, 512, 2048)


# ----------------------------------------------------------------------------- absorption

def synthetic(n: int = 4000, seed: int = 0):
    """Speech positions (one per sequence), a concept on 20% of them; latent 0 is the concept,
    latents 1-3 each fire on a third of it (and rarely elsewhere), latents 4-9 are noise."""
    rng = np.random.default_rng(seed)
    concept = rng.random(n) < 0.2
    acts = np.zeros((n, 10), np.float32)
    acts[concept, 0] = rng.uniform(1, 2, concept.sum())
    third = rng.integers(0, 3, n)
    for j in range(3):
        on = concept & (third == j)
        acts[on, 1 + j] = rng.uniform(0.1, 0.3, on.sum())  # weak
        stray = ~concept & (rng.random(n) < 0.01)
        acts[stray, 1 + j] = rng.uniform(0.1, 0.3, stray.sum())
    acts[:, 4:] = rng.random((n, 6)) * (rng.random((n, 6)) < 0.1)
    meta = {"modality": np.ones(n, np.int8), "seq": np.arange(n)}
    stats = LatentStats(sp.csc_matrix(acts), meta)
    explain = rng.random(n) < 0.5
    return stats, concept, explain


def test_auroc_above_zero_is_the_auroc_with_implicit_zeros():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.3
    s = rng.random(500) * (rng.random(500) < 0.4)
    s[:20] = 0.5  # ties among nonzeros too
    keep = s > 0
    keep[::7] = True  # some explicit zeros
    got = auroc_above_zero(s[keep & y], s[keep & ~y], int(y.sum()), int((~y).sum()))
    assert got == pytest.approx(auroc(y, s))


def test_absorption_counts_one_latent_for_a_clean_concept_and_three_for_a_split_one():
    stats, concept, explain = synthetic()
    speech = np.ones(len(concept), bool)
    fit, test = speech & explain, speech & ~explain
    n, chosen, aurocs = absorption_count(stats, concept, fit, test, np.arange(10))
    assert (n, chosen) == (1, [0]) and aurocs[0] > 0.99
    # without latent 0 the concept is spread over latents 1-3, each weak alone
    alone = [auroc(concept[test], stats.dense(j)[test]) for j in (1, 2, 3)]
    assert all(0.6 < a < 0.75 for a in alone), alone
    n, chosen, aurocs = absorption_count(stats, concept, fit, test, np.arange(1, 10))
    assert n == 3 and sorted(chosen) == [1, 2, 3], (n, chosen, aurocs)
    assert aurocs[0] < aurocs[1] < 0.9 <= aurocs[2]
    # noise latents alone never reach it: unreached within the cap
    n, chosen, _ = absorption_count(stats, concept, fit, test, np.arange(4, 10), cap=4)
    assert n is None and len(chosen) <= 4


def test_absorption_summary_over_planted_concepts():
    stats, concept, explain = synthetic()

    class Attrs:  # the two planted concepts: the clean one, and one only latents 1-3 carry
        def planted(self):
            return ["tag:clean", "tag:split"]

        def column(self, name):
            return concept

    out = absorption(stats, Attrs(), explain, np.arange(10))
    assert [r["latents"] for r in out["concepts"]] == [1, 1] and out["mean"] == 1.0
    out = absorption(stats, Attrs(), explain, np.arange(1, 10))
    assert [r["latents"] for r in out["concepts"]] == [3, 3] and out["reached"] == 1.0
    assert out["mean"] == 3.0 and all(r["measured"] for r in out["concepts"])


# ----------------------------------------------------------------------------- stability

def test_seed_stability_is_one_against_itself_and_near_zero_against_random():
    torch.manual_seed(0)
    w = torch.randn(256, 64)
    live = torch.rand(256) < 0.9
    same = decoder_stability(w, w, live, live)
    assert same["share"] == 1.0 and same["latents"] == int(live.sum())
    assert same["mean_max_cos"] == pytest.approx(1.0, abs=1e-4)
    rand = decoder_stability(w, torch.randn(256, 64))
    assert rand["share"] < 0.02 and rand["mean_max_cos"] < 0.5
    # a scaled, shuffled copy with a few latents replaced: the share that survives
    other = w[torch.randperm(256)] * 3
    other[:32] = torch.randn(32, 64)
    assert 0.8 < decoder_stability(w, other)["share"] < 0.95
    assert decoder_stability(w, -w)["share"] == 0.0  # signed: the opposite direction differs


# ----------------------------------------------------------------------------- the sweep

def test_sweep_reports_recall_absorption_and_stability(tmp_path, tiny_store, tiny_corpus,
                                                       tiny_tokens, tiny_tinycosy):
    base = SAETrainConfig(layer=1, d_sae=32, k=4, tokens=64 * 20, batch_size=64, lr=3e-3,
                          buffer=1000, eval_frac=0.34, eval_rows=2000, eval_examples=0,
                          store=str(tiny_store), model=str(tiny_tinycosy[0]),
                          corpus=str(tiny_corpus), speech_tokens=str(tiny_tokens), device="cpu",
                          threads=1, architecture="matryoshka", matryoshka_widths="8")
    sc = SweepConfig(layers="1", out=str(tmp_path / "sweep"), sae_root=str(tmp_path / "sae"),
                     top=20, min_active=2, absorption_cap=4, stability_seed=1)
    (row,) = sweep(base, sc)
    assert (tmp_path / "sae" / "layer_1_seed1" / "cfg.json").exists()
    assert row["architecture"] == "matryoshka" and set(row["prefix_explained_variance"]) == {
        "8", "32"}
    for key in ("planted_recall", "planted_utterance_recall", "planted_random_recall",
                "absorption_reached", "seed_stability"):
        assert row[key] is not None and 0 <= row[key] <= 1, key
    assert row["absorption_mean"] is None or 1 <= row["absorption_mean"] <= 4
    # tiny held-out halves lack some concepts' positives: those are not counted as unreached
    assert any(not r["measured"] for r in row["planted"]["absorption"]["concepts"])
    planted = row["planted"]
    assert planted["recall"]["concepts"] and planted["absorption"]["cap"] == 4
    assert [r["concept"] for r in planted["absorption"]["concepts"]] == [
        r["concept"] for r in planted["recall"]["concepts"]]
    assert row["stability"]["match"] == "max-cosine" and row["stability"]["seed"] == 1
    # the residual's own linear read of each concept, beside recall (its ceiling)
    ceiling = planted["residual_ceiling"]
    assert {r["concept"] for r in planted["recall"]["concepts"]} <= {
        r["concept"] for r in ceiling["concepts"]}
    for key in ("planted_ceiling", "planted_ceiling_utterance"):
        assert row[key] is None or 0 <= row[key] <= 1, key
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["layers"][0]["seed_stability"] == row["seed_stability"]
    assert saved["sweep"]["stability_seed"] == 1
    html = (tmp_path / "sweep" / "sweep.html").read_text()
    assert "seed stability" in html and "absorption" in html
    with pytest.raises(ValueError, match="is the SAEs' own --seed"):
        sweep(base, SweepConfig(layers="1", out=str(tmp_path / "s2"), stability_seed=0))
    # sae.compare puts variants side by side (here the one, twice under another name)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "sweep.json").write_text(json.dumps(
        {"layers": [{**saved["layers"][0], "architecture": None}],
         "config": {**saved["config"], "architecture": "batchtopk"}}))
    rows = run_compare(CompareConfig(sweeps=(str(tmp_path / "sweep"),
                                              str(tmp_path / "plain" / "sweep.json")),
                                     out=str(tmp_path / "cmp")))
    assert [(r["variant"], r["architecture"]) for r in rows] == [("sweep", "matryoshka"),
                                                                 ("plain", "batchtopk")]
    text = table(rows)
    assert "matryoshka" in text and "absorb" in text and len(text.splitlines()) == 4
    assert (tmp_path / "cmp" / "compare.html").stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="no sweep.json in"):
        run_compare(CompareConfig(sweeps=(str(tmp_path / "nowhere"),)))


def test_residual_probe_reads_a_linear_concept_and_not_a_shuffled_one():
    from sae.planted import _probe_auroc

    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.3
    x = rng.normal(size=(4000, 16))
    x[:, 3] += 1.5 * y  # the concept lies along one direction
    fit = np.arange(4000) < 2000
    assert _probe_auroc(x, y, fit, ~fit, rng, cap=1500) > 0.8
    assert abs(_probe_auroc(x, rng.permutation(y), fit, ~fit, rng, cap=1500) - 0.5) < 0.06
    assert _probe_auroc(x, np.zeros(4000, bool), fit, ~fit, rng, cap=1500) is None
