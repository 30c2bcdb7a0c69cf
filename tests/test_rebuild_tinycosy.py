"""`make tinycosy`: the one command that rebuilds TinyCosy on grammar and open-domain text."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY_VOICES, make_commands


def _after(words: list[str], flag: str) -> list[str]:
    return words[words.index(flag) + 2:]


def test_recipe_is_the_budget_run_with_the_curriculum():
    """The training step is budget_2h_bf16_pad64.json's command (every in-grammar goal in 100
    minutes) with the grammar sentences alone first, as the best run on the open-domain corpus
    measured it (open_bpe_curriculum_2h.json); the evaluation covers both domains, paired."""
    cmds = make_commands("tinycosy")
    train = next(c for c in cmds if "interp.models.train" in c)
    budget = json.loads((ROOT / "data/tinycosy/budget_2h_bf16_pad64.json").read_text())
    best = json.loads((ROOT / "data/tinycosy/open_bpe_curriculum_2h.json").read_text())
    assert _after(train, "--export")[:-2] == _after(shlex.split(best["command"]), "--export")[:-2]
    assert _after(train, "--export")[:-2] == _after(shlex.split(budget["command"]), "--export")
    # the best run's 6,000 grammar steps, as the share of its time budget they took (the recipe
    # switches by the clock, so a slower machine keeps the split)
    assert shlex.split(best["command"])[-2:] == ["--grammar-first-steps", "6000"]
    assert train[-2] == "--grammar-first-frac"
    at_6000 = next(r for r in best["train"]["heldout_loss_by_step"] if r["step"] == 6000)
    assert abs(float(train[-1]) - at_6000["minutes"] / 100) < 0.01
    build = next(c for c in cmds if "interp.corpus" in c)
    assert build[build.index("--open-frac") + 1] == "0.5" and build[build.index("--n") + 1] == "24000"
    evals = [c for c in cmds if "interp.models.evaluate" in c and "--model" in c]
    assert [c[c.index("--model") + 1] for c in evals] == ["data/tinycosy", "runs/tinycosy_open/export"]
    assert all(c[c.index("--domain") + 1] == "both" for c in evals)
    assert [c[c.index("--tokens") + 1] for c in evals] == ["runs/tinycosy_open/tokens"] * 2
    assert evals[1][evals[1].index("--baseline") + 1] == "runs/tinycosy_open/eval_baseline/eval.json"
    assert not any("--baseline" in c for c in make_commands("tinycosy", "TC_BASELINE=")
                   if "--model" in c)
    # both evaluations heard again by the open-English ears, paired the same way
    heard = [c for c in cmds if "--rescore" in c]
    assert [c[c.index("--rescore") + 1] for c in heard] == ["runs/tinycosy_open/eval_baseline",
                                                            "runs/tinycosy_open/eval"]
    assert all(c[c.index("--asr") + 1] == "data/instruments/asr_open" for c in heard)
    assert heard[1][heard[1].index("--baseline") + 1] == \
        "runs/tinycosy_open/eval_baseline_open_ears/eval.json"
    assert (ROOT / "data/instruments/asr_open/config.json").exists()


def test_another_codec_tokenizes_the_corpus_for_the_baseline_too():
    """TC_CODEC: the new model's tokens from that codec; the baseline's teacher-forced figures
    from the corpus in its own codes (evaluate refuses another codec's tokens)."""
    cmds = make_commands("tinycosy", "TC_CODEC=runs/codec_x")
    toks = [c for c in cmds if "interp.audio" in c and "tokenize" in c]
    assert toks[0][toks[0].index("--codec") + 1] == "runs/codec_x"
    assert toks[1][toks[1].index("--model") + 1] == "data/tinycosy"
    assert toks[1][toks[1].index("--out") + 1] == "runs/tinycosy_open/tokens_baseline"
    evals = [c for c in cmds if "interp.models.evaluate" in c and "--model" in c]
    assert [c[c.index("--tokens") + 1] for c in evals] == ["runs/tinycosy_open/tokens_baseline",
                                                           "runs/tinycosy_open/tokens"]


@pytest.mark.slow
# many multi-threaded subprocesses: beside the other test worker it takes 3-4x its ~80 s alone
@pytest.mark.timeout(1500)
def test_the_chain_runs_at_toy_size(tmp_path):
    """Corpus → tokens → training → both-domain evaluation paired against a baseline, end to end
    on a toy corpus and a 2-layer model (the baseline: the toy model itself, so every paired
    difference is 0)."""
    tc = tmp_path / "tc"
    corpus = (f"--n 40 --open-frac 0.5 --n-sentences 60 --n-open-sentences 40 --heldout-frac 0.25"
              f" --n-heldout-voices 2 --seed 1 --workers 1 --voices {' '.join(TINY_VOICES)}")
    recipe = ("--steps 2 --batch-size 4 --warmup 1 --eval-every 2 --eval-examples 4 --ckpt-every 2"
              " --n-layers 2 --hidden 32 --threads 1 --speech-noise 0.15 --text-frontend phonemes"
              " --attn-guide 0.2 --attn-guide-layer 1 --precision bf16 --pad-multiple 64")
    cmd = ["make", "-o", "install", "tinycosy", f"BIN={Path(sys.executable).parent}", f"TC={tc}",
           f"TC_CORPUS={corpus}", f"TC_RECIPE={recipe}", "TC_EVAL_N=1",
           "TC_EVAL=--n-conditioning 4 --n-reference 2 --examples 0", f"TC_BASELINE={tc}/export"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"TinyCosy rebuilt: {tc}/export" in proc.stdout
    manifest = json.loads((tc / "corpus" / "manifest.json").read_text())
    assert set(manifest["summary"]["domain"]) == {"grammar", "open"}
    train = json.loads((tc / "export" / "train.json").read_text())
    assert train["steps"] == 2 and train["config"]["pad_multiple"] == 64
    assert (tc / "export" / "text_frontend.json").exists()  # the recipe's phonemes, guided
    assert train["config"]["corpus"] == f"{tc}/corpus"
    ev = json.loads((tc / "eval" / "eval.json").read_text())
    assert ev["config"]["domain"] == "both" and set(ev["by_domain"]) == {"grammar", "open"}
    assert ev["vs_baseline"]["wer_diff"]["mean"] in (0, None)
    heard = json.loads((tc / "eval_open_ears" / "eval.json").read_text())  # the open ears, paired
    assert heard["config"]["asr"] == "data/instruments/asr_open" and "vs_baseline" in heard
    # run again: every step is skipped or resumes, nothing is retrained
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "params):" not in again.stdout  # train's closing line
    assert json.loads((tc / "export" / "train.json").read_text()) == train


def test_record_gathers_a_run_and_spells_its_command(tmp_path):
    """`python -m interp.models.record`: a run's training and its paired evaluations in one small
    file, the training command spelt from its settings so that it parses back to them."""
    import argparse
    from dataclasses import asdict, replace

    from interp.cli import add_config_args, config_from_args
    from interp.models.record import build_record
    from interp.models.train import TrainConfig

    settings = asdict(replace(TrainConfig(), compile=True, lr=1e-3, grammar_first_frac=0.64))
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="make tinycosy"):
        build_record(run, "nothing yet")
    fig = {"n_sentences": 2, "wer": 0.5, "wer_open": 0.6, "laughter_with_tag": 1.0}
    ev = {"config": {"domain": "both", "model": "runs/x", "n": 2},
          "by_domain": {"grammar": fig, "open": fig | {"wer": 0.9}},
          "vs_baseline_by_domain": {d: {"wer_key": k, "wer_diff": {"mean": -0.1}, "extra": 1}
                                    for d, k in (("grammar", "wer"), ("open", "wer_open"))}}
    for name, body in (("export/train.json", {"steps": 7, "config": settings}),
                       ("eval/eval.json", ev), ("eval_baseline/eval.json", ev)):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(json.dumps(body))
    rec = build_record(run, "a test run")
    assert rec["new"]["open"]["wer"] == 0.9 and rec["new"]["grammar"]["wer_espeak_reference_open"] is None
    assert rec["new_minus_shipped"]["open"] == {"wer_key": "wer_open", "wer_diff": {"mean": -0.1}}
    assert rec["train"]["steps"] == 7 and "open_ears" not in rec and "shipped" in rec
    words = shlex.split(rec["command"])
    assert words[:3] == ["python", "-m", "interp.models.train"]
    parser = argparse.ArgumentParser()
    add_config_args(parser, TrainConfig)
    assert asdict(config_from_args(TrainConfig, parser.parse_args(words[3:]))) == settings
    assert rec["eval_command"].startswith("python -m interp.models.evaluate --domain both")
