"""Bad input, one row a case: each runs a stage's CLI in-process (through `run_cli`, as
`python -m` does) and asserts its exit code, that it says what is wrong in one line on stderr
(no traceback), and that nothing already computed changed (the folders it was pointed at are
byte-identical afterwards). The issue's failures 1, 4, 5, 6 and 7 are rows here."""

from __future__ import annotations

import importlib
import re
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from interp.cli import run_cli


@dataclass(frozen=True)
class Case:
    module: str  # the CLI: python -m <module>
    argv: Callable[[dict], list[str]]  # from the prepared paths
    code: int
    message: str  # regex the one error line must match
    absent: str = ""  # a regex that must not appear (a hint that leads nowhere)


def run_main(module: str, argv: list[str], monkeypatch) -> int:
    """`python -m module *argv`, in this process; the exit code."""
    mod = importlib.import_module(module)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_cli(mod.main)
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders if f.exists()
            for p in sorted([f] if f.is_file() else f.rglob("*")) if p.is_file()}


def truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


@pytest.fixture()
def paths(tmp_path, tiny_store, tiny_heldout_store, tiny_sae, tiny_tinycosy, tiny_corpus,
          tiny_tokens, tiny_codec_dir) -> dict:
    """Copies of finished outputs (a store, an SAE, a model) and damaged copies of them."""
    p = {"tmp": tmp_path, "corpus": tiny_corpus, "tokens": tiny_tokens, "codec": tiny_codec_dir,
         "heldout": tiny_heldout_store, "model": tiny_tinycosy[0]}
    p["store"] = tmp_path / "acts"
    shutil.copytree(tiny_store, p["store"])
    p["sae"] = tmp_path / "sae"
    shutil.copytree(tiny_sae, p["sae"])
    for name, file in (("sae_trunc", "sae_weights.safetensors"), ("sae_badcfg", "cfg.json")):
        p[name] = tmp_path / name
        shutil.copytree(tiny_sae, p[name])
        truncate(p[name] / file)
    for name, file in (("model_trunc", "model.safetensors"), ("model_badcfg", "config.json")):
        p[name] = tmp_path / name
        shutil.copytree(tiny_tinycosy[0], p[name])
        truncate(p[name] / file)
    p["store_trunc"] = tmp_path / "acts_trunc"
    shutil.copytree(tiny_store, p["store_trunc"])
    truncate(p["store_trunc"] / "layer_1" / "shard_00001.npy", 0.9)
    audio = np.zeros(32000, np.float32)
    sf.write(tmp_path / "silent.wav", audio, 16000)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "short.wav", 0.3 * rng.standard_normal(3200).astype(np.float32), 16000)
    p["wav"] = tmp_path / "out" / "speech.wav"  # a result already there: must stay as it was
    p["wav"].parent.mkdir()
    p["wav"].write_bytes(b"RIFF an earlier result")
    return p


def cache(*extra: str) -> Callable[[dict], list[str]]:
    return lambda p: ["--layers", "1", "--max-utts", "12", "--shard-utts", "4", "--model",
                      str(p["model"]), "--corpus", str(p["corpus"]), "--tokens", str(p["tokens"]),
                      "--out", str(p["store"]), "--threads", "1", *extra]


def tts(text: str, *extra: str) -> Callable[[dict], list[str]]:
    return lambda p: [text, "--model", str(p["model"]), "--out",
                      str(p["wav"]), *[e.format(**p) for e in extra]]


def sae_train(*extra: str) -> Callable[[dict], list[str]]:
    return lambda p: ["--layer", "1", "--d-sae", "64", "--k", "4", "--tokens", "640",
                      "--batch-size", "64", "--model", str(p["model"]), "--corpus",
                      str(p["corpus"]), "--speech-tokens", str(p["tokens"]), "--out",
                      str(p["tmp"] / "sae_new"), "--device", "cpu", "--threads", "1",
                      *[e.format(**p) for e in extra]]


def autointerp(sae: str) -> Callable[[dict], list[str]]:
    return lambda p: ["--layer", "1", "--store", str(p["heldout"]), "--sae", str(p[sae]),
                      "--corpus", str(p["corpus"]), "--model", str(p["model"]), "--out",
                      str(p["tmp"] / "autointerp")]


WORDS = " ".join(["the quick brown fox jumps over the lazy dog"] * 400)  # 3,600 words
CASES = {
    # failure 6: an inverted range wrote an empty store marked complete
    "cache: inverted layer range": Case("interp.cache", cache("--layers", "1-0"), 2,
                                        r"range 1-0 runs backwards; write 0-1"),
    # failure 1: a smaller selection into a finished store returned fewer utterances
    "cache: smaller --max-utts into a store": Case("interp.cache", cache("--max-utts", "5"), 2,
                                                   r"holds more utterances .* another --out"),
    "cache: other layers into a store": Case("interp.cache", cache("--layers", "0"), 2,
                                             r"holds another cache \(layers \[1\] here"),
    # failure 7: `sae.train --layer 99` suggested `interp.cache --layers 99`
    "sae.train: a layer the model lacks": Case(
        "sae.train", sae_train("--store", "{store}", "--layer", "99"), 2,
        r"layer 99 does not exist: the model has layers 0–1", r"--layers 99"),
    "sae.train: a truncated store shard": Case(
        "sae.train", sae_train("--store", "{store_trunc}"), 2,
        r"shard_00001.npy is missing, truncated .* run the cache command again"),
    # failure 5: a truncated SAE was a 26-line SafetensorError; a truncated cfg.json unnamed
    "autointerp: truncated sae_weights": Case("autointerp.run", autointerp("sae_trunc"), 2,
                                              r"sae_weights.safetensors is corrupt or truncated"),
    "autointerp: truncated SAE cfg.json": Case("autointerp.run", autointerp("sae_badcfg"), 2,
                                               r"sae_badcfg/cfg.json is corrupt or truncated"),
    "tts: truncated model weights": Case(
        "interp.models.__main__", lambda p: tts("hello")(p)[:1] + [
            "--model", str(p["model_trunc"]), "--out", str(p["wav"])],
        2, r"model_trunc/model.safetensors is corrupt or truncated"),
    "tts: truncated model config": Case(
        "interp.models.__main__", lambda p: ["hello", "--model", str(p["model_badcfg"]), "--out", str(p["wav"])],
        2, r"model_badcfg/config.json is corrupt or truncated"),
    # failure 4: 2,000 words ran past the model's positions for minutes
    "tts: text longer than the model's positions": Case(
        "interp.models.__main__", tts(WORDS), 2, r"text too long for the model: its prompt "
        r"takes \d+ of 2048 positions"),
    # failure 6: emoji, non-Latin text and a silent prompt gave babble without a word
    "tts: emoji": Case("interp.models.__main__", tts("😀 😂 🎉 😀"), 2,
                       r"cannot represent this text \(4 of 4 characters"),
    "tts: non-Latin script": Case("interp.models.__main__", tts("Привет, как дела?"), 2,
                                  r"cannot represent this text"),
    "tts: silent prompt wav": Case("interp.models.__main__",
                                   tts("hello there", "--prompt", "{tmp}/silent.wav"), 2,
                                   r"silent.wav: the prompt is silent"),
    "tts: too-short prompt wav": Case("interp.models.__main__",
                                      tts("hello there", "--prompt", "{tmp}/short.wav"), 2,
                                      r"short.wav: the prompt is 0.20 s long"),
    "tts: --out that is not audio": Case(
        "interp.models.__main__", lambda p: ["hello", "--model", str(p["model"]), "--out", str(p["tmp"] / "x.txt")],
        2, r"--out .*x.txt: give a .wav"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, paths: dict, monkeypatch, capsys) -> None:
    case = CASES[name]
    kept = [paths[k] for k in ("store", "sae", "model", "store_trunc", "wav")]
    before = snapshot(*kept)
    code = run_main(case.module, case.argv(paths), monkeypatch)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert code == case.code, err[-2000:]
    assert len(errors) == 1 and errors[0] == lines[-1], err[-2000:]
    assert re.search(case.message, errors[0]), errors[0]
    assert not case.absent or not re.search(case.absent, errors[0]), errors[0]
    assert "Traceback" not in err
    assert snapshot(*kept) == before  # nothing already computed changed
    assert not (paths["tmp"] / "autointerp").exists()  # no empty output folder left behind


def test_tts_out_into_a_missing_folder_is_created(paths, monkeypatch, capsys) -> None:
    """Failure 5: `--out` into a missing folder said "System error." and lost the audio."""
    out = paths["tmp"] / "new" / "deeper" / "speech.wav"
    code = run_main("interp.models.__main__", ["hello there", "--model", str(paths["model"]), "--out", str(out)],
                    monkeypatch)
    assert code == 0 and out.exists() and sf.info(out).frames > 0
    assert f"wrote {out}" in capsys.readouterr().out


def test_wrong_layer_sae_says_which_to_pass(paths) -> None:
    """Failure 7: a wrong-layer SAE error did not say which SAE to pass."""
    from sae.io import load_sae

    with pytest.raises(ValueError) as err:
        load_sae(paths["sae"], hook="blocks.0.hook_resid_post")
    msg = str(err.value)
    assert "\n" not in msg and "--sae runs/tinycosy/sae/layer_0" in msg
    assert "python -m sae.train --layer 0" in msg


def test_a_few_unknown_characters_only_warn(tiny_tinycosy, caplog) -> None:
    from interp.models.text_tokenizer import length_units, load_tokenizer

    tok = load_tokenizer(tiny_tinycosy[0])
    with caplog.at_level("WARNING"):
        assert length_units(tok, "what a lovely day it is today 😀") > 0
    assert any("never saw" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("raised, expected", [
    ("stage", "interrupted: checkpoint at step 7 of 9 kept in x; run the same command again"),
    ("plain", "interrupted: files this stage had finished stay as they were"),
    ("multiline", "error: first | second"),
])
def test_run_cli_says_what_was_kept(raised: str, expected: str, capsys) -> None:
    """run_cli printed "finished work is kept; run again to resume" for every stage, also for
    ones that keep nothing (the TTS CLI): now a stage that saved says what it kept."""
    from interp.cli import StageInterrupted

    def main() -> None:
        if raised == "stage":
            raise StageInterrupted("checkpoint at step 7 of 9 kept in x; run the same command "
                                   "again to resume")
        if raised == "plain":
            raise KeyboardInterrupt
        raise ValueError("first\nsecond")

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(main)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == (2 if raised == "multiline" else 130)
    assert err.startswith(expected) and len(err.splitlines()) == 1
    assert raised == "stage" or "again to resume" not in err
