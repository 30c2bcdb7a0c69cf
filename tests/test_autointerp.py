"""Auto-interp: modality tags, offline labels on planted latents, scoring controls, the CLI."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import soundfile as sf

from autointerp.config import AutointerpConfig
from autointerp.examples import Sampler
from autointerp.explain import offline_labels
from autointerp.run import main, run, singled_out
from autointerp.score import IdentityControl, OfflineScorer, shuffled
from interp.cli import run_cli
from interp.corpus.table import load_table
from interp.store.reader import ActivationStore
from sae.attributes import build_attributes
from sae.latent_stats import META_KEYS, LatentStats, modality_tags, with_sequences
from sae.planted import auroc, explain_mask, latent_aurocs, planted_recall

LATENT_KEYS = {"latent", "density", "max_act", "mean_act", "quantiles", "modality",
               "speech_frac", "label", "explanation", "explainer", "scores", "evidence"}
EX_KEYS = {"utt_id", "src_utt_id", "position", "modality", "act", "text", "clip"}


def store_meta(*store_dirs: Path, layer: int = 1) -> dict[str, np.ndarray]:
    stores = [ActivationStore(d, layer) for d in store_dirs]
    metas = [st.meta(s) for st in stores for s in st.shards]
    return with_sequences({k: np.concatenate([m[k] for m in metas]) for k in META_KEYS})


def balanced_seed(meta: dict, attrs, names: list[str]) -> int:
    """A split seed whose halves both hold each concept and its complement in that modality
    (34 tiny utterances can put all of one gender in one half)."""
    for seed in range(50):
        explain = explain_mask(meta, seed)
        ok = True
        for n in names:
            col = attrs.column(n)
            same = meta["modality"] == meta["modality"][np.argmax(col)]
            for half in (explain, ~explain):
                ok &= bool((col & half).sum() >= 10 and (~col & same & half).sum() >= 10)
        if ok:
            return seed
    raise AssertionError("no balanced split of the tiny corpus")


def planted_stats(meta: dict, columns: list[np.ndarray], seed: int = 0) -> LatentStats:
    """A fake SAE pass: latent i fires (random positive values) exactly where columns[i]."""
    rng = np.random.default_rng(seed)
    n = len(meta["seq"])
    rows, cols = [], []
    for i, c in enumerate(columns):
        idx = np.flatnonzero(c)
        rows.append(idx)
        cols.append(np.full(len(idx), i))
    r, c = np.concatenate(rows), np.concatenate(cols)
    vals = rng.uniform(0.5, 3.0, len(r)).astype(np.float32)
    return LatentStats(sp.csc_matrix((vals, (r, c)), shape=(n, len(columns))), meta)


@pytest.fixture(scope="module")
def planted(tiny_store, tiny_heldout_store, tiny_corpus):
    meta = store_meta(tiny_store, tiny_heldout_store)
    rows = load_table(tiny_corpus)
    attrs = build_attributes(meta, rows, {}, None)
    rng = np.random.default_rng(3)
    names = ["tag:laughter", "gender:female", "gender:male", "index:0-4"]
    cols = [attrs.column(n) for n in names]
    cols += [rng.random(len(meta["seq"])) < 0.05 for _ in range(12)]  # unstructured latents
    cols.append(np.zeros(len(meta["seq"]), bool))  # a dead latent
    return meta, rows, attrs, names, planted_stats(meta, cols), balanced_seed(meta, attrs, names)


def test_modality_thresholds():
    # 10 positions: 0-8 speech, 9 text; latent 0 tops on speech, latent 1 on the text position
    meta = with_sequences({"utt": np.zeros(10, int), "src_utt": np.zeros(10, int),
                           "position": np.arange(10), "token": np.zeros(10, int),
                           "modality": np.array([1] * 9 + [0]), "t0": np.zeros(10),
                           "t1": np.zeros(10)})
    a = np.zeros((10, 3), np.float32)
    a[:, 0] = np.linspace(1, 2, 10)  # 9 of 10 top activations on speech: 0.9
    a[9, 1], a[0, 1] = 5.0, 1.0  # 1 of 2 on speech: 0.5
    stats = LatentStats(sp.csc_matrix(a), meta)
    tags, frac = modality_tags(stats, 50, 0.8, 0.2)
    assert tags == ["audio", "mixed", "dead"] and frac[0] == pytest.approx(0.9)
    assert modality_tags(stats, 50, 0.95, 0.2)[0][0] == "mixed"
    assert modality_tags(stats, 1, 0.8, 0.2)[0][1] == "text"  # only its top activation counts
    assert stats.max_act[0] == pytest.approx(2.0) and stats.density[1] == pytest.approx(0.2)


def test_auroc_helpers():
    assert auroc(np.array([1, 1, 0, 0]), np.array([2, 1, 0, 0])) == 1.0
    assert auroc(np.array([1, 0]), np.array([0, 0])) == 0.5
    assert auroc(np.array([1, 1]), np.array([1, 2])) is None
    keys = list(range(10))
    perm = shuffled(keys, 0)
    assert sorted(perm.values()) == keys and all(perm[k] != k for k in keys)


def test_offline_labels_and_scores_on_planted_latents(planted):
    meta, rows, attrs, names, stats, seed = planted
    assert attrs.column("tag:laughter").sum() > 20, "the tiny held-out set needs laughter"
    explain = explain_mask(meta, seed)
    live = list(range(stats.d_sae - 1))
    labels = offline_labels(stats, attrs, explain, live)
    assert labels[0].attribute == "tag:laughter"
    assert labels[0].label.startswith("[annotations] laughter")
    assert [labels[i].attribute for i in (1, 2, 3)] == names[1:]
    sampler = Sampler(stats, explain, 0)
    scorer = OfflineScorer(stats, attrs)
    draws = {lat: sampler.draw(lat, 10, 10, 10, 10) for lat in live}
    for lat in range(4):  # planted latents: their label detects them on held-out examples
        ex = draws[lat]
        assert not np.intersect1d(ex.score_pos, np.flatnonzero(explain)).size  # split kept
        assert stats.dense(lat)[ex.score_neg].max() == 0  # negatives do not fire
        assert scorer.score(labels[lat].attribute, ex.score_pos, ex.score_neg)["auroc"] >= 0.9
    control = shuffled(live, 1)
    ctrl = [scorer.score(labels[control[lat]].attribute, draws[lat].score_pos,
                         draws[lat].score_neg)["auroc"] for lat in live]
    ctrl_mean = np.mean([c for c in ctrl if c is not None])
    assert abs(ctrl_mean - 0.5) < 0.15, ctrl_mean


def test_planted_recall(planted):
    meta, _, attrs, _, stats, seed = planted
    explain = explain_mask(meta, seed)
    live = np.arange(stats.d_sae - 1)
    rec = planted_recall(stats, attrs, explain, live, seed=0)
    by = {r["concept"]: r for r in rec["concepts"]}
    assert by["tag:laughter"]["best_latent"] == 0 and by["tag:laughter"]["auroc"] == 1.0
    assert by["gender:female"]["best_latent"] == 1 and by["gender:male"]["best_latent"] == 2
    assert all(0.3 < r["random_auroc"] < 0.7 for r in rec["concepts"])
    assert rec["random_recall"] < rec["recall"]
    assert by["tag:laughter"]["group_latents"][0] == 0 and by["tag:laughter"]["group_auroc"] > 0.8
    # the sparse AUROC equals the dense one
    speech = meta["modality"] == 1
    dense = auroc(attrs.column("tag:laughter")[speech], stats.dense(5)[speech])
    fast = latent_aurocs(stats, attrs.column("tag:laughter"), speech, np.array([5]))[0]
    assert fast == pytest.approx(dense)


@pytest.fixture(scope="module")
def offline_run(tiny_heldout_store, tiny_sae, tiny_corpus, tiny_tinycosy, tmp_path_factory):
    out = tmp_path_factory.mktemp("autointerp") / "layer_1"
    cfg = AutointerpConfig(layer=1, store=str(tiny_heldout_store), sae=str(tiny_sae),
                           corpus=str(tiny_corpus), model=str(tiny_tinycosy[0]), out=str(out),
                           n_clips=2)
    return cfg, run(cfg)


def test_offline_run_outputs(offline_run):
    cfg, summary = offline_run
    out = cfg.out_dir
    recs = [json.loads(x) for x in (out / "latents.jsonl").read_text().splitlines()]
    assert len(recs) == 64 and all(set(r) == LATENT_KEYS for r in recs)
    assert sum(summary["modality_counts"].values()) == 64
    live = [r for r in recs if r["modality"] != "dead"]
    assert live and all(r["evidence"] and r["density"] > 0 for r in live)
    assert all(r["evidence"] is None and r["speech_frac"] is None
               for r in recs if r["modality"] == "dead")
    assert any(r["scores"]["auroc"] is not None for r in live)
    ev = json.loads((out / live[0]["evidence"]).read_text())
    assert set(ev) == {"latent", "histogram", "top", "quantiles", "random", "logit_lens",
                       "output_side"}
    assert len(ev["logit_lens"]["promoted"]) == 10 and ev["top"]
    # what it does to the sound: two code profiles, their differences, a sentence, renderings
    out_side = ev["output_side"]
    assert set(out_side) >= {"promoted_profile", "suppressed_profile", "deltas", "text", "wav"}
    assert out_side["text"].startswith("promotes ")
    assert set(out_side["promoted_profile"]) == {"f0_hz", "voiced", "energy_db", "centroid_hz",
                                                 "tilt_db_oct"}
    assert out_side["codes"]["promoted"][0] == ev["logit_lens"]["promoted"][0][0] or \
        ev["logit_lens"]["promoted"][0][0] >= 64  # a special can top the lens, never a profile
    rendered, sr = sf.read(out / out_side["wav"]["promoted"])  # default: the 200 densest
    assert sr == 16000 and len(rendered) == 12800  # 20 tokens, 0.8 s
    assert all(set(e) == EX_KEYS for e in ev["top"] + ev["random"])
    assert all(e["act"] == 0 for e in ev["random"])
    assert sum(ev["histogram"]["counts"]) == round(live[0]["density"] * summary["n_positions"])
    for r in live:  # modality rules: speech → clip, text → window, mixed → both
        for e in json.loads((out / r["evidence"]).read_text())["top"]:
            assert (e["clip"] is not None) == (e["modality"] == "speech")
            assert (e["text"] is not None) == (e["modality"] != "speech"
                                               or r["modality"] == "mixed")
            if e["text"]:
                assert e["text"]["acts"][e["text"]["center"]] == pytest.approx(e["act"], abs=1e-3)
    clips = [e["clip"] for r in live for e in json.loads((out / r["evidence"]).read_text())["top"]
             if e["clip"] and e["clip"]["wav"]]
    assert clips, "no audio clip written"
    audio, sr = sf.read(out / clips[0]["wav"])
    assert sr == 16000 and len(audio) == 16000
    assert all(0 <= t < 1 for t, _ in clips[0]["trace"])
    html = (out / "figures.html").read_text()
    assert len(html) > 1_000_000 and "<script src=\"http" not in html  # plotly.js inline
    assert set(summary["shuffled_control"]) == {"text", "audio", "mixed", "all"}
    assert set(summary["identity_control"]) == {"text", "audio", "mixed", "all"}
    assert all("identity_auroc" in r["scores"] for r in live)
    tm = summary["token_matched"]  # detection on same-token pairs, beside its shuffled control
    assert set(tm["contextual_share"]) == set(tm["auroc"]) == set(tm["shuffled_control"]) == {
        "text", "audio", "mixed", "all"} and tm["threshold"] == 0.5
    scored = [r for r in live if r["scores"]["auroc"] is not None]
    assert all(0 <= r["scores"]["token_matched_coverage"] <= 1 for r in scored)
    assert tm["contextual_share"]["all"] == pytest.approx(np.mean(
        [r["scores"]["token_matched_coverage"] >= 0.5 for r in scored]), abs=1e-4)


def test_offline_run_resumes(offline_run, caplog):
    cfg, summary = offline_run
    stamp = (cfg.out_dir / "stats.npz").stat().st_mtime_ns
    with caplog.at_level("INFO"):
        again = run(cfg)
    assert "reusing" in caplog.text
    assert (cfg.out_dir / "stats.npz").stat().st_mtime_ns == stamp
    assert again["auroc_by_modality"] == summary["auroc_by_modality"]


def test_intervention_flag_steers_the_densest_latent(offline_run, tmp_path):
    """--n-intervene 1: the densest latent with evidence is turned up alone and listened to;
    its evidence file keeps the result, the others have none."""
    cfg, _ = offline_run
    cfg = AutointerpConfig(**{**cfg.to_dict(), "out": str(tmp_path / "layer_1"),
                              "n_intervene": 1, "intervene_sentences": 1, "n_output_wavs": 0})
    summary = run(cfg)
    assert "intervene_s" in summary["timings"]
    recs = [json.loads(x) for x in (cfg.out_dir / "latents.jsonl").read_text().splitlines()]
    live = [r for r in recs if r["evidence"]]
    top = max(live, key=lambda r: (r["density"], -r["latent"]))
    evs = {r["latent"]: json.loads((cfg.out_dir / r["evidence"]).read_text()) for r in live}
    assert [lat for lat, ev in evs.items() if "intervention" in ev] == [top["latent"]]
    iv = evs[top["latent"]]["intervention"]
    assert iv["hook"] == "blocks.1.hook_resid_post" and iv["n_sentences"] == 1
    assert iv["text"].startswith("turned up alone (+4× its max activation, 1 sentence)")
    assert all(ev["output_side"]["wav"] is None for ev in evs.values())  # --n-output-wavs 0
    with pytest.raises(ValueError, match="--n-intervene must be"):
        run(AutointerpConfig(**{**cfg.to_dict(), "n_intervene": -1}))


def test_singled_out_latents_come_from_planted_recall_and_the_steering_selection(tmp_path):
    recall = {"concepts": [{"best_latent": 5, "utterance_latent": 9}, {"best_latent": 5}]}
    assert singled_out(recall, tmp_path) == [5, 9]  # no concepts.json: recall's alone, once each
    (tmp_path / "concepts.json").write_text(json.dumps({"concepts": {
        "gender": {"male": {"latents": [1, 2, 3, 4]}, "female": {"latents": [9, 7]}}}}))
    assert singled_out(recall, tmp_path) == [5, 9, 1, 2, 3, 7]


def test_intervention_on_singled_out_latents(offline_run, tmp_path):
    """--intervene-singled-out with --n-intervene 0: exactly the live latents that planted recall
    names are turned up (the tiny SAE has no steering selection)."""
    cfg, _ = offline_run
    cfg = AutointerpConfig(**{**cfg.to_dict(), "out": str(tmp_path / "layer_1"),
                              "intervene_singled_out": True, "intervene_sentences": 1,
                              "n_output_wavs": 0})
    summary = run(cfg)
    recs = [json.loads(x) for x in (cfg.out_dir / "latents.jsonl").read_text().splitlines()]
    evs = {r["latent"]: json.loads((cfg.out_dir / r["evidence"]).read_text())
           for r in recs if r["evidence"]}
    named = set(singled_out(summary["planted_recall"], cfg.sae_dir)) & set(evs)
    assert named and {lat for lat, ev in evs.items() if "intervention" in ev} == named


def test_input_errors(offline_run, tmp_path):
    cfg, _ = offline_run
    base = cfg.to_dict()
    with pytest.raises(FileNotFoundError, match="no activation store"):
        run(AutointerpConfig(**{**base, "store": str(tmp_path / "none")}))
    with pytest.raises(FileNotFoundError, match="no SAE"):
        run(AutointerpConfig(**{**base, "sae": str(tmp_path / "none")}))
    with pytest.raises(ValueError, match="layer 3 does not exist: the model has layers 0–1"):
        run(AutointerpConfig(**{**base, "layer": 3}))
    for key, value, msg in (("layer", 5, "trained on layer 5"), ("d_in", 7, "7 wide")):
        bad = tmp_path / f"sae_{key}"
        shutil.copytree(cfg.sae_dir, bad)
        sae_cfg = json.loads((bad / "cfg.json").read_text())
        if key == "layer":
            sae_cfg["metadata"]["layer"] = value
        else:
            sae_cfg["d_in"] = value
        (bad / "cfg.json").write_text(json.dumps(sae_cfg))
        with pytest.raises(ValueError, match=msg):
            run(AutointerpConfig(**{**base, "sae": str(bad)}))


def test_cli_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["autointerp.run", "--layer", "1", "--store",
                                      str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exc:
        run_cli(main)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: no SAE")


def token_sequences(rng: np.random.Generator, n_seq: int = 60, length: int = 40
                    ) -> tuple[dict, np.ndarray, np.ndarray]:
    """Speech-only metadata of `n_seq` sequences of random tokens 0-19: (meta, token, whether a
    position is in the first half of its sequence)."""
    token = rng.integers(0, 20, n_seq * length)
    meta = with_sequences({"utt": np.repeat(np.arange(n_seq), length),
                           "src_utt": np.repeat(np.arange(n_seq), length),
                           "position": np.tile(np.arange(length), n_seq), "token": token,
                           "modality": np.ones(n_seq * length, int),
                           "t0": np.zeros(n_seq * length), "t1": np.zeros(n_seq * length)})
    return meta, token, meta["position"] < length // 2


def test_identity_control_scores_token_detectors_high_and_others_at_chance():
    """A latent that fires on one token is fully predicted by the token alone (1.0); one that
    fires at random is not (≈ 0.5); one that fires on a token only in the first half of each
    sequence sits between."""
    rng = np.random.default_rng(0)
    meta, token, first_half = token_sequences(rng)
    cols = [token == 5, rng.random(len(token)) < 0.05, (token == 7) & first_half]
    stats = planted_stats(meta, cols)
    explain = explain_mask(meta, 0)
    ic = IdentityControl(stats, explain)

    def held_out(col):
        pos = np.flatnonzero(col & ~explain)
        neg = np.flatnonzero(~col & ~explain)[:: 5]
        return pos, neg

    assert ic.score(0, *held_out(cols[0]))["auroc"] == pytest.approx(1.0)
    assert abs(ic.score(1, *held_out(cols[1]))["auroc"] - 0.5) < 0.1
    mid = ic.score(2, *held_out(cols[2]))["auroc"]
    assert 0.9 < mid < 1.0  # the token is needed, the half is not in it: negatives tie with it
    assert ic.score(0, np.zeros(0, int), np.arange(3))["auroc"] is None


def test_same_token_pairs_leave_token_detectors_out_and_score_context():
    """Each firing position is paired with a silent occurrence of its own token: a latent that
    fires on every occurrence of a token finds no pair (coverage 0); one that fires on a token in
    the first half of each sequence finds one for most positions (a silent occurrence is used
    once: about as many as there are firing ones), and there the token alone is at
    chance (0.5) while "first half of the sequence" still tells them apart (1.0)."""
    rng = np.random.default_rng(0)
    meta, token, first_half = token_sequences(rng)
    cols = [token == 5, (token == 7) & first_half]
    stats = planted_stats(meta, cols)
    explain = explain_mask(meta, 0)
    sampler = Sampler(stats, explain, 0)
    pos = [np.flatnonzero(c & ~explain) for c in cols]
    kept, neg = sampler.same_token_negatives(0, pos[0])
    assert len(pos[0]) > 10 and len(kept) == len(neg) == 0
    kept, neg = sampler.same_token_negatives(1, pos[1])
    assert len(kept) >= 0.8 * len(pos[1]) and len(set(neg.tolist())) == len(neg) == len(kept)
    assert (token[neg] == 7).all() and not cols[1][neg].any() and not explain[neg].any()
    ic = IdentityControl(stats, explain)
    assert ic.score(1, kept, neg)["auroc"] == pytest.approx(0.5)
    y = np.r_[np.ones(len(kept), bool), np.zeros(len(neg), bool)]
    assert auroc(y, first_half[np.r_[kept, neg]]) == pytest.approx(1.0)
    again = sampler.same_token_negatives(1, pos[1])[1]
    assert (again == neg).all()  # seeded per latent


def test_phone_attributes_split_each_timed_word(planted):
    """`phone:X`: a timed word's speech positions shared among its espeak-ng phonemes in order,
    so the phones cover exactly the words' positions, and a word's first position is its first
    phone."""
    from sae.attributes import describe, norm_word, word_phones

    meta, rows, attrs, *_ = planted
    phones = [n for n in attrs.names if n.startswith("phone:")]
    words = [n for n in attrs.names if n.startswith("word:")]
    assert len(phones) > 10 and "'" not in "".join(phones)  # no stress marks in the names
    union = lambda names: np.logical_or.reduce([attrs.column(n) for n in names])  # noqa: E731
    assert (union(phones) == union(words)).all()
    assert describe("phone:s").startswith("the sound /s/")
    speech = np.flatnonzero(meta["modality"] == 1)
    p = speech[0]  # the first timed word of the first speech segment starts with its first phone
    row = rows[int(meta["src_utt"][p])]
    tmid = (meta["t0"] + meta["t1"]) / 2
    seg = speech[meta["src_utt"][speech] == meta["src_utt"][p]]
    w = next(w for w in row["words"] if ((tmid[seg] >= w["start"]) & (tmid[seg] < w["end"])).any())
    first = seg[(tmid[seg] >= w["start"]) & (tmid[seg] < w["end"])][0]
    voice = row.get("accent") or "en-us"
    assert attrs.column(f"phone:{word_phones(norm_word(w['word']), voice)[0]}")[first]
