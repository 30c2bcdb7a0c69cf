"""Batched activation caching: B right-padded utterances per forward pass give each utterance
exactly the activations of its own unbatched pass (every hook point, every layer), padding never
leaks into a row or into the store, and a store cached with batch 4 equals one cached with batch 1
(same manifest, same order, same metadata; activations equal to fp16 rounding). On the tiny
TinyCosy and on the random-weight CosyVoice3 replica."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from interp.cache import CacheConfig, main, run_cache
from interp.models.backbone import rows_per_forward
from interp.models.registry import load_backbone
from interp.store.writer import capture_examples, length_batches


@pytest.fixture(scope="module")
def model(tinycosy_or_replica) -> str:
    return tinycosy_or_replica


@pytest.fixture(scope="module")
def backbone(model):
    return load_backbone(model, "cpu")


@pytest.fixture(scope="module")
def examples(backbone, tiny_corpus, tiny_tokens):
    return backbone.corpus_examples(tiny_corpus, tiny_tokens, ["train"], 10)


def _cfg(model, corpus, tokens, out: Path, **kw) -> CacheConfig:
    base = dict(layers="0,1", hook="resid_post", split="train", max_utts=10, shard_utts=4,
                model=model, corpus=str(corpus), tokens=str(tokens), out=str(out), device="cpu")
    return CacheConfig(**{**base, **kw})


def test_batched_rows_equal_unbatched_at_every_hook_point(backbone, examples):
    names = backbone.hook_points()  # every kind at every layer
    lengths = {sum(len(x) for x in (ex.text_ids, ex.prompt, ex.target)) for ex, _, _ in examples}
    assert len(lengths) > 1  # rows of several lengths: real padding in every batch
    one = capture_examples(backbone, names, examples, 1, store_dtype=torch.float32)
    four = capture_examples(backbone, names, examples, 4, store_dtype=torch.float32)
    for (a, mod_a), (b, mod_b), (ex, _, _) in zip(one, four, examples, strict=True):
        assert mod_a == mod_b
        n = len(ex.text_ids) + len(ex.prompt) + len(ex.target) + 2  # [sos] … [task_id] …
        for name in names:
            assert a[name].shape == b[name].shape == (n, backbone.d_model)  # no padding kept
            np.testing.assert_allclose(b[name], a[name], atol=1e-5, rtol=0, err_msg=name)


def test_the_forward_stops_after_the_deepest_cached_layer(backbone, examples):
    from interp.hooks.points import decoder_layers
    names = ["blocks.0.hook_resid_post", "blocks.0.hook_mlp_out"]
    runs = {"last": 0, "first": 0}
    layers = decoder_layers(backbone.model)
    hooks = [layers[-1].register_forward_hook(lambda *_: runs.__setitem__("last", runs["last"] + 1)),
             layers[0].register_forward_hook(lambda *_: runs.__setitem__("first", runs["first"] + 1))]
    try:
        cut = capture_examples(backbone, names, examples[:5], 2, store_dtype=torch.float32)
        assert runs == {"last": 0, "first": 3}  # 3 forwards, none past layer 0
        full = capture_examples(backbone, names, examples[:5], 2, store_dtype=torch.float32,
                                stop=False)
        assert runs == {"last": 3, "first": 6}
    finally:
        for h in hooks:
            h.remove()
    for (a, mod_a), (b, mod_b) in zip(cut, full, strict=True):
        assert mod_a == mod_b  # the modality without the forward's outputs is the outputs' own
        for n in names:
            np.testing.assert_array_equal(a[n], b[n])


def test_padding_never_leaks_into_a_shorter_row(backbone, examples):
    names = [f"blocks.{backbone.n_layers - 1}.hook_resid_post", "blocks.0.hook_attn_out"]
    by_len = sorted(examples, key=lambda e: len(e[0].target))
    short, long_a, long_b = by_len[0], by_len[-1], by_len[-2]
    assert len(short[0].target) < len(long_b[0].target) <= len(long_a[0].target)
    alone = capture_examples(backbone, names, [short], 1, store_dtype=torch.float32)[0][0]
    for other in (long_a, long_b):  # batched with two different longer rows
        with_long = capture_examples(backbone, names, [short, other], 2,
                                     store_dtype=torch.float32)[0][0]
        for n in names:
            np.testing.assert_allclose(with_long[n], alone[n], atol=1e-5, rtol=0)


def _store(folder: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    shards = sorted(manifest["shards"])
    meta = {}
    for s in shards:
        with np.load(folder / "meta" / f"{s}.npz") as z:
            for k in z.files:
                meta.setdefault(k, []).append(z[k])
    acts = {f"layer_{layer}": np.concatenate([np.load(folder / f"layer_{layer}" / f"{s}.npy")
                                              for s in shards])
            for layer in manifest["spec"]["layers"]}
    return manifest, {k: np.concatenate(v) for k, v in meta.items()}, acts


@pytest.mark.parametrize("hook", ["resid_post", "attn_out"])
def test_store_with_batch_4_equals_store_with_batch_1(model, tiny_corpus, tiny_tokens, tmp_path,
                                                      hook):
    run_cache(_cfg(model, tiny_corpus, tiny_tokens, tmp_path / "b1", batch_size=1, hook=hook))
    run_cache(_cfg(model, tiny_corpus, tiny_tokens, tmp_path / "b4", batch_size=4, hook=hook))
    m1, meta1, acts1 = _store(tmp_path / "b1")
    m4, meta4, acts4 = _store(tmp_path / "b4")
    assert m1 == m4 and m1["complete"]  # same spec, shards, positions, selection
    assert meta1.keys() == meta4.keys()
    for k in meta1:  # same utterances, in the same order, position by position
        np.testing.assert_array_equal(meta4[k], meta1[k], err_msg=k)
    for layer in acts1:
        assert acts4[layer].dtype == acts1[layer].dtype == np.float16
        # fp32 differences ~1e-6 may round to the neighbouring float16 (2^-11 relative)
        np.testing.assert_allclose(acts4[layer].astype(np.float32),
                                   acts1[layer].astype(np.float32), atol=1e-5, rtol=1e-3)


def test_resume_with_another_batch_size_finishes_the_same_store(tiny_tinycosy, tiny_corpus,
                                                                tiny_tokens, tmp_path):
    cfg = _cfg(str(tiny_tinycosy[0]), tiny_corpus, tiny_tokens, tmp_path / "acts", batch_size=4)
    run_cache(cfg)
    _, meta_full, acts_full = _store(tmp_path / "acts")
    last = sorted((tmp_path / "acts" / "meta").glob("*.npz"))[-1]
    last.unlink()  # killed before the last shard was marked done
    m = run_cache(replace(cfg, batch_size=3))
    _, meta, acts = _store(tmp_path / "acts")
    assert m["complete"]
    np.testing.assert_array_equal(meta["utt"], meta_full["utt"])
    for layer in acts:
        np.testing.assert_allclose(acts[layer].astype(np.float32),
                                   acts_full[layer].astype(np.float32), atol=1e-5, rtol=1e-3)


def test_a_backbone_that_cannot_batch_runs_one_at_a_time(backbone, examples, monkeypatch):
    assert rows_per_forward(backbone, 16) == 16
    assert rows_per_forward(SimpleNamespace(), 16) == 1  # a backbone that does not say
    calls = []
    real = backbone.teacher_forced
    monkeypatch.setattr(backbone, "can_batch", lambda: False)
    monkeypatch.setattr(backbone, "teacher_forced", lambda *a: calls.append(1) or real(*a))
    names = ["blocks.1.hook_resid_post"]
    got = capture_examples(backbone, names, examples[:5], 4, store_dtype=torch.float32)
    assert len(calls) == 5  # one forward per utterance
    seqs = [(e.text_ids, e.prompt, e.target) for e, _, _ in examples[:2]]
    assert len(backbone.teacher_forced_batch(seqs)) == 2 and len(calls) == 7  # its own fallback
    monkeypatch.undo()
    want = capture_examples(backbone, names, examples[:5], 4, store_dtype=torch.float32)
    for (a, _), (b, _) in zip(got, want, strict=True):
        np.testing.assert_allclose(a[names[0]], b[names[0]], atol=1e-5, rtol=0)


def test_length_batches_sort_longest_first_and_keep_every_index():
    groups = length_batches([3, 9, 1, 7, 5], 2)
    assert groups == [[1, 3], [4, 0], [2]]
    with pytest.raises(ValueError, match="--batch-size 0"):
        rows_per_forward(SimpleNamespace(), 0)


def test_bf16_is_recorded_and_an_fp32_store_is_not_resumed_in_bf16(tiny_tinycosy, tiny_corpus,
                                                                   tiny_tokens, tmp_path):
    model = str(tiny_tinycosy[0])
    cfg = _cfg(model, tiny_corpus, tiny_tokens, tmp_path / "acts", max_utts=4, batch_size=4)
    m = run_cache(cfg)
    assert m["spec"]["dtype"] == "fp32"
    with pytest.raises(ValueError, match="dtype 'fp32' here, 'bf16' asked"):
        run_cache(replace(cfg, dtype="bf16"))
    mb = run_cache(replace(cfg, dtype="bf16", out=str(tmp_path / "bf16")))
    assert mb["spec"]["dtype"] == "bf16" and mb["positions"] == m["positions"]
    _, _, a32 = _store(tmp_path / "acts")
    _, _, a16 = _store(tmp_path / "bf16")
    for layer in a32:  # the same activations, to bf16's ~3 significant digits
        x, y = a32[layer].astype(np.float32), a16[layer].astype(np.float32)
        assert np.abs(x - y).max() <= 0.05 * np.abs(x).max()
    # a store made before the dtype was recorded is an fp32 store: it resumes in fp32
    manifest = json.loads((tmp_path / "acts" / "manifest.json").read_text())
    del manifest["spec"]["dtype"]
    (tmp_path / "acts" / "manifest.json").write_text(json.dumps(manifest))
    assert run_cache(cfg)["complete"]
    with pytest.raises(ValueError, match="--dtype 'fp16'"):
        run_cache(replace(cfg, dtype="fp16"))
    with pytest.raises(ValueError, match="--batch-size 0"):
        run_cache(replace(cfg, batch_size=0))


def test_cli_help_names_batch_size_and_dtype(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python -m interp.cache", "--help"])
    with pytest.raises(SystemExit):
        main()
    out = capsys.readouterr().out
    assert "--batch-size" in out and "--dtype" in out and "--device" in out
