"""Shared fixtures: a tiny corpus (seconds to build) and a tiny codec fitted on it."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from interp.audio.codec import CodecConfig, SpeechCodec
from interp.corpus.build import CorpusJob, run_corpus
from interp.corpus.plan import CorpusConfig
from interp.corpus.table import load_audio, load_table

# Tiny models gain nothing from threads, and oversubscribed cores slow everything else down.
torch.set_num_threads(1)

# Four voices (two per gender, two accents), 40 utterances, plenty of tags.
TINY_VOICES = ("en-us+m3@p50", "en-gb-x-rp+m1@p45", "en-us+f2@p50", "en-gb-scotland+f4@p55",
               "en-029+m5@p40", "en-gb+f1@p50")


ROOT = Path(__file__).resolve().parents[1]


def make_commands(target: str, *overrides: str) -> list[list[str]]:
    """The commands `make TARGET` would run (`make -n`, without the install step), split into
    words: how the one-command rebuild targets' recipes are checked without running them."""
    out = subprocess.run(["make", "-n", "-o", "install", target, "BIN=bin", *overrides],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in out.replace("\\\n", " ").splitlines()
            if "bin/python -m" in line]


def tiny_config(**overrides) -> CorpusConfig:
    base = dict(n=40, n_sentences=60, n_heldout_voices=2, heldout_frac=0.15, laughter_frac=0.5,
                breath_frac=0.3, voices=TINY_VOICES, seed=1)
    return CorpusConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    run_corpus(CorpusJob(out=out, workers=2), tiny_config())
    return out


@pytest.fixture(scope="session")
def tiny_codec(tiny_corpus) -> SpeechCodec:
    audios = [load_audio(tiny_corpus, r)[0] for r in load_table(tiny_corpus, "train")]
    return SpeechCodec.fit(audios, CodecConfig(n_codes=64, fit_tokens=20_000))


@pytest.fixture(scope="session")
def tiny_codec_dir(tmp_path_factory, tiny_codec) -> Path:
    out = tmp_path_factory.mktemp("codec")
    tiny_codec.save(out)
    return out


@pytest.fixture(scope="session")
def tiny_tokens(tmp_path_factory, tiny_corpus, tiny_codec_dir) -> Path:
    from interp.audio.tokenize_corpus import tokenize_corpus

    out = tmp_path_factory.mktemp("tokens")
    tokenize_corpus(tiny_corpus, tiny_codec_dir, out, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_tinycosy(tmp_path_factory, tiny_corpus, tiny_tokens) -> tuple[Path, dict]:
    """A 2-layer TinyCosy trained for a few steps: (export folder, training summary)."""
    from interp.models.train import TrainConfig, train

    run = tmp_path_factory.mktemp("tinycosy")
    cfg = TrainConfig(corpus=str(tiny_corpus), tokens=str(tiny_tokens), out=str(run / "run"),
                      export=str(run / "export"), steps=12, batch_size=8, lr=3e-3, warmup=2,
                      eval_every=6, eval_examples=8, ckpt_every=6, n_layers=2, hidden=32,
                      text_vocab=300)
    return run / "export", train(cfg)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_corpus, tiny_tokens, tiny_tinycosy) -> Path:
    """Layer-1 residuals of 12 train utterances of the tiny corpus, in shards of 4."""
    from interp.cache import CacheConfig, run_cache

    out = tmp_path_factory.mktemp("store") / "acts"
    run_cache(CacheConfig(layers="1", hook="resid_post", split="train", max_utts=12,
                                   shard_utts=4, model=tiny_tinycosy[0], corpus=tiny_corpus,
                                   tokens=tiny_tokens, out=out))
    return out


@pytest.fixture(scope="session")
def tiny_heldout_store(tmp_path_factory, tiny_corpus, tiny_tokens, tiny_tinycosy) -> Path:
    """Layer-1 residuals of the tiny corpus's held-out utterances (what auto-interp reads)."""
    from interp.cache import CacheConfig, run_cache

    out = tmp_path_factory.mktemp("store_heldout") / "acts"
    run_cache(CacheConfig(layers="1", hook="resid_post",
                                   split="heldout_sentences,heldout_voices", max_utts=0,
                                   shard_utts=4, model=tiny_tinycosy[0], corpus=tiny_corpus,
                                   tokens=tiny_tokens, out=out))
    return out


@pytest.fixture(scope="session")
def tiny_sae(tmp_path_factory, tiny_store, tiny_corpus, tiny_tokens, tiny_tinycosy) -> Path:
    """A layer-1 BatchTopK SAE (d_sae 64, k 4) of the tiny TinyCosy, in SAELens format."""
    out = tmp_path_factory.mktemp("tiny_sae") / "layer_1"
    train_tiny_sae(1, out, tiny_store, tiny_tinycosy[0], tiny_corpus, tiny_tokens)
    return out


def train_tiny_sae(layer: int, out: Path, store: Path, model: Path, corpus: Path,
                   tokens: Path) -> None:
    """The tiny BatchTopK SAE recipe (d_sae 64, k 4, 60 steps) at `layer` of `store`."""
    from sae.config import SAETrainConfig
    from sae.train import train

    train(SAETrainConfig(layer=layer, d_sae=64, k=4, tokens=64 * 60, batch_size=64, lr=3e-3,
                         threshold_lr=0.3, dead_window=20, buffer=2000, eval_frac=0.34,
                         eval_rows=5000, eval_examples=2, ckpt_every=30, out=str(out),
                         store=str(store), model=str(model), corpus=str(corpus),
                         speech_tokens=str(tokens), device="cpu", threads=1))


@pytest.fixture(scope="module", params=["tinycosy", "cosyvoice3"])
def tinycosy_or_replica(request, tiny_tinycosy, tmp_path_factory) -> str:
    """A `--model` spec, once per backbone kind: the tiny TinyCosy, and a random-weight
    CosyVoice3 replica (tests/replicas.py) whose 64 speech codes fit the tiny codec's tokens."""
    if request.param == "tinycosy":
        return str(tiny_tinycosy[0])
    from tests.replicas import write_cosyvoice3

    folder = tmp_path_factory.mktemp("cosyvoice3_replica")
    write_cosyvoice3(folder, tokenizer=True)
    return f"cosyvoice3:{folder}"


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    """Files that hold a slow test run first, each file's tests in their own order: with the
    suite on several workers (`make test`), the long files start early instead of leaving one
    worker busy at the end while the other waits."""
    files: dict[Path, tuple[int, bool]] = {}
    for item in items:
        first, slow = files.get(item.path, (len(files), False))
        files[item.path] = (first, slow or item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: (not files[item.path][1], files[item.path][0]))
