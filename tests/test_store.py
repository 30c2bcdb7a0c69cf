"""Activation store: bookkeeping against the corpus, resume after a kill, fingerprint refusal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from interp.audio.tokenize_corpus import load_tokens
from interp.cache import CacheConfig, parse_hook_kind, parse_layers, run_cache
from interp.corpus.table import load_table
from interp.store import ActivationStore


def _args(tmp_path, corpus, tokens, model, **kw) -> CacheConfig:
    base = dict(layers="0,1", hook="resid_post", split="train", max_utts=12, shard_utts=4,
                model=str(model), corpus=str(corpus), tokens=str(tokens),
                out=str(tmp_path / "acts"))
    return CacheConfig(**{**base, **kw})


@pytest.fixture()
def store_args(tmp_path, tiny_corpus, tiny_tokens, tiny_tinycosy):
    return _args(tmp_path, tiny_corpus, tiny_tokens, tiny_tinycosy[0])


def test_bookkeeping_matches_corpus(store_args, tiny_corpus, tiny_tokens):
    m = run_cache(store_args)
    assert m["complete"] and m["spec"]["layers"] == [0, 1]
    store = ActivationStore(Path(store_args.out), 1)
    rows, tokens = load_table(tiny_corpus), load_tokens(tiny_tokens)
    meta = {k: np.concatenate([store.meta(s)[k] for s in store.shards])
            for k in store.meta(store.shards[0])}
    assert len(store) == len(meta["utt"]) == len(store.all())
    for u in np.unique(meta["utt"]):
        row = rows[u]
        target = (meta["utt"] == u) & (meta["src_utt"] == u) & (meta["modality"] == 1)
        # every target speech token is stored once, with its own time span in its waveform
        assert np.array_equal(meta["token"][target], tokens[row["utt_id"]])
        assert np.allclose(meta["t0"][target], np.arange(target.sum()) / 25)
        assert meta["t1"][target][-1] <= row["duration"] + 0.04
        prompt = (meta["utt"] == u) & (meta["src_utt"] != u)
        assert rows[meta["src_utt"][prompt][0]]["utt_id"] == row["prompt_id"]
        assert np.isnan(meta["t0"][(meta["utt"] == u) & (meta["modality"] != 1)]).all()
    batch = next(store.batches(16, modality="speech", buffer=64))
    assert batch.shape == (16, store.d_model)


def test_resume_after_kill_loses_and_duplicates_nothing(store_args):
    run_cache(store_args)
    full = ActivationStore(Path(store_args.out), 0).all()
    # kill mid-run: the last shard's meta (its completion mark) never got written
    last = sorted((Path(store_args.out) / "meta").glob("*.npz"))[-1]
    last.unlink()
    (Path(store_args.out) / "layer_0" / (last.stem + ".npy")).unlink()
    m = run_cache(store_args)
    assert m["complete"]
    assert np.array_equal(ActivationStore(Path(store_args.out), 0).all(), full)


def test_other_model_is_refused(store_args, tmp_path, tiny_tinycosy):
    run_cache(store_args)
    other = tmp_path / "other_model"
    shutil.copytree(tiny_tinycosy[0], other)
    from interp.models.tinycosy import TinyCosy

    model = TinyCosy.load(other)
    model.speech_embedding.weight.data += 1.0
    model.save(other)
    with pytest.raises(ValueError, match="another model or corpus"):
        run_cache(_args(tmp_path, store_args.corpus, store_args.tokens, other))


def test_bad_layer_hook_and_missing_store(tmp_path):
    with pytest.raises(ValueError, match="layers 0–23"):
        parse_layers("12,30", 24)
    assert parse_layers("0-3,12", 24) == (0, 1, 2, 3, 12)
    with pytest.raises(ValueError, match="unknown hook"):
        parse_hook_kind("resid_middle")
    with pytest.raises(FileNotFoundError, match="python -m interp.cache"):
        ActivationStore(tmp_path, 12)
    proc = subprocess.run([sys.executable, "-m", "interp.cache", "--layers", "99", "--model",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error:")


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(store_args, tmp_path):
    run_cache(store_args)
    single = ActivationStore(Path(store_args.out), 1).all()
    out2 = tmp_path / "acts2"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29533", "-m", "interp.cache", "--layers", "0,1", "--max-utts", "12",
           "--shard-utts", "4", "--model", str(store_args.model), "--corpus",
           str(store_args.corpus), "--tokens", str(store_args.tokens), "--out", str(out2),
           "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = ActivationStore(out2, 1)
    assert store.manifest["complete"] and len(store.shards) == 3
    assert np.array_equal(store.all(), single)


def test_model_names_resolve_to_backbones():
    """Every stage's --model goes through load_backbone: names and folders give the same
    backbone, and its spec is what stores and SAEs record."""
    from interp.edit.model import TINYEDIT_DIR
    from interp.models.registry import load_backbone
    from interp.paths import TINYCOSY_DIR

    by_name, by_dir = load_backbone("tinycosy", "cpu"), load_backbone(TINYCOSY_DIR, "cpu")
    assert (by_name.name, by_name.spec) == ("tinycosy", "tinycosy") == (by_dir.name, by_dir.spec)
    assert by_name.fingerprint == by_dir.fingerprint
    edit = load_backbone(str(TINYEDIT_DIR), "cpu")  # told apart by edit.json
    assert (edit.name, edit.spec) == ("tinyedit", "tinyedit")
    assert edit.fingerprint != by_name.fingerprint


def _files(folder) -> dict[str, bytes]:
    """Every file of a folder and its bytes: what a refused run must leave untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_larger_selection_extends_the_short_last_shard(store_args, tmp_path):
    """The issue's failure 1: --max-utts 10 then 12 into one folder reused the short last shard."""
    small = run_cache(replace(store_args, max_utts=10))
    assert small["selection"]["n_utts"] == 10 and small["complete"]
    m = run_cache(store_args)  # 12 utterances: shard 2 grows from 2 to 4 utterances
    fresh = run_cache(replace(store_args, out=str(tmp_path / "fresh")))
    assert m["complete"] and m["positions"] == fresh["positions"] > small["positions"]
    assert m["selection"] == fresh["selection"] and m["shards"] == fresh["shards"]
    assert m["shards"]["shard_00002"] > small["shards"]["shard_00002"]
    assert np.array_equal(ActivationStore(Path(store_args.out), 1).all(),
                          ActivationStore(tmp_path / "fresh", 1).all())


def test_smaller_or_other_selection_is_refused_untouched(store_args):
    run_cache(store_args)
    before = _files(Path(store_args.out))
    for change in ({"max_utts": 5}, {"split": "heldout_sentences"}, {"layers": "0"}):
        with pytest.raises(ValueError) as err:
            run_cache(replace(store_args, **change))
        assert "\n" not in str(err.value) and "another --out" in str(err.value)
    assert _files(Path(store_args.out)) == before


def test_damaged_shard_is_named_on_open_and_rewritten_on_rerun(store_args):
    run_cache(store_args)
    full = ActivationStore(Path(store_args.out), 0).all()
    shard = Path(store_args.out) / "layer_0" / "shard_00001.npy"
    shard.write_bytes(shard.read_bytes()[:-100])  # truncated (a disk that filled up, a bad copy)
    with pytest.raises(ValueError, match="shard_00001.npy is missing, truncated"):
        ActivationStore(Path(store_args.out), 0)
    run_cache(store_args)
    assert np.array_equal(ActivationStore(Path(store_args.out), 0).all(), full)


def test_sigterm_stops_after_the_shard_in_progress(store_args, monkeypatch):
    import os
    import signal

    from interp.cli import StageInterrupted
    from interp.store import writer

    real, calls = writer.write_shard, {"n": 0}

    def write_then_signal(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the first shard is being written
        return real(*args, **kw)

    monkeypatch.setattr(writer, "write_shard", write_then_signal)
    with pytest.raises(StageInterrupted, match="1 of 3 shards .* are written and kept"):
        run_cache(store_args)
    assert signal.getsignal(signal.SIGTERM) is not None and calls["n"] == 1
    assert len(list((Path(store_args.out) / "meta").glob("*.npz"))) == 1
    monkeypatch.setattr(writer, "write_shard", real)
    m = run_cache(store_args)
    assert m["complete"] and calls["n"] == 1 and len(m["shards"]) == 3


def test_sigkill_then_rerun_equals_an_uninterrupted_store(store_args, tmp_path):
    import json
    import os
    import signal
    import time

    every = replace(store_args, max_utts=0, shard_utts=1)  # ~30 one-utterance shards
    whole = run_cache(replace(every, out=str(tmp_path / "whole")))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "interp.cache", "--layers", "0,1", "--shard-utts", "1",
           "--model", str(store_args.model), "--corpus", str(store_args.corpus), "--tokens",
           str(store_args.tokens), "--out", str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (
            (out / "meta").exists() and any((out / "meta").glob("*.npz"))):
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not json.loads((out / "manifest.json").read_text()).get("complete")
    m = run_cache(replace(every, out=str(out)))
    assert m["shards"] == whole["shards"] and m["complete"] and len(m["shards"]) > 10
    for layer in (0, 1):
        assert np.array_equal(ActivationStore(out, layer).all(),
                              ActivationStore(tmp_path / "whole", layer).all())


def test_a_temporary_file_left_by_a_kill_is_not_a_shard(tmp_path):
    """A kill mid-write leaves `shard_00000.tmp.npz` beside the finished shards: the resume check
    must not read it as shard number '00000.tmp' (it once failed with a ValueError)."""
    from interp.store.check import finished_shard_numbers

    (tmp_path / "meta").mkdir()
    for name in ("shard_00000.npz", "shard_00001.tmp.npz", "shard_00002.npz", "notes.npz"):
        (tmp_path / "meta" / name).write_bytes(b"")
    assert sorted(finished_shard_numbers(tmp_path)) == ["00000", "00002"]
