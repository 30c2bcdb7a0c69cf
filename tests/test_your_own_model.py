"""Your own model and your own data, end to end, through the CLIs the README's "Your own model
and data" section gives: 40 espeak recordings in two styles (a manifest with a `style` column) →
`interp.corpus import` → `interp.audio tokenize --model cosyvoice3:DIR` (the checkpoint's own
`speech_tokenizer_v3.onnx`) → `interp.cache` → `sae.train` → `autointerp.run` →
`steering.run --concept whisper --groups style=whisper style=default` → `interp.judge`, on a
tiny random-weight CosyVoice3 replica dir (real key and file names, a tiny ONNX speech
tokenizer). The replica has no flow + HiFT, so steering stops before measuring with one line
naming what to install and which checkpoint files are missing, and the judge has no set to judge;
every stage before it wrote its files. A stage given another model's SAE, store or tokens
refuses in one line.

Each CLI runs as a subprocess, `python -m ...` as a user types it (~110 s in all on one busy
core, of which ~95 s are the interpreters' start-ups: torch, transformers, sae_lens).
`WORKBENCH_E2E_INPROCESS=1` runs each as `run_cli(main)` in this process instead (argv, stdout
and stderr swapped in; what `python -m` runs, ~15 s) for a quick loop.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from interp.paths import CODEC_DIR
from tests.replicas import write_cosyvoice3

pytestmark = pytest.mark.slow  # ~2 minutes on one core (15 s in-process)

SUBPROCESS = os.environ.get("WORKBENCH_E2E_INPROCESS") != "1"
SENTENCES = ("the cat sat on the mat", "please bring my yellow umbrella",
             "she remembered the missing boxes", "open the window before noon",
             "we walked home along the river", "my brother likes green apples",
             "the old clock stopped at ten", "a small boat crossed the lake")
# speaker → (espeak language, variant for style=default, variant for style=whisper, pitch)
SPEAKERS = {"ann": ("en-us", "f2", "whisperf", 55), "bob": ("en-gb", "m3", "whisper", 40),
            "cat": ("en-us", "f4", "whisperf", 60), "dan": ("en-gb-scotland", "m1", "whisper", 45)}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING")


def cli(module: str, *args: str) -> tuple[int, str, list[str]]:
    """`python -m module args` → (exit code, stdout, stderr lines that are neither log records
    nor progress bars)."""
    argv = [str(a) for a in args]
    if SUBPROCESS:
        r = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
        code, out, err = r.returncode, r.stdout, r.stderr
    else:
        from interp.cli import run_cli

        package = importlib.util.find_spec(module).submodule_search_locations is not None
        mod = importlib.import_module(f"{module}.__main__" if package else module)
        saved = sys.argv, {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        out_buf, err_buf = io.StringIO(), io.StringIO()
        sys.argv = [module, *argv]
        code = 0
        try:
            with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
                if module == "interp.judge":
                    code = mod.main(argv)
                else:
                    run_cli(mod.main)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = saved[0]
            for s, h in saved[1].items():
                signal.signal(s, h)
        out, err = out_buf.getvalue(), err_buf.getvalue()
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()
             and not line.startswith(LOG_LEVELS) and "it/s]" not in line and "%|" not in line]
    return code, out, lines


def ok(result: tuple[int, str, list[str]]) -> str:
    code, out, err = result
    assert code == 0, "\n".join(err[-20:])
    return out


def refused(result: tuple[int, str, list[str]]) -> str:
    """The one `error:` line of a stage that refused (exit 2, no traceback)."""
    code, _, err = result
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert not any("Traceback" in line for line in err), err
    return errors[0]


def write_recordings(root: Path) -> Path:
    """40 recordings: 4 speakers × 5 of 8 sentences (each speaker its own, overlapping, so held-out
    speakers leave training sentences) × 2 styles, rendered by espeak-ng; whispered with its
    whisper voice variant. A CSV manifest: wav, transcript, speaker, style."""
    from interp.corpus.espeak import engine

    (root / "audio").mkdir(parents=True)
    rows = []
    for k, (speaker, (lang, normal, whisper, pitch)) in enumerate(SPEAKERS.items()):
        for j in range(5):
            text = SENTENCES[(2 * k + j) % len(SENTENCES)]
            for style, variant in (("default", normal), ("whisper", whisper)):
                r = engine().render(text, f"{lang}+{variant}", 160, pitch)
                name = f"audio/{speaker}_{j}_{style}.wav"
                sf.write(root / name, r.audio, r.sample_rate)
                rows.append({"wav": name, "transcript": text.capitalize() + ".",
                             "speaker": speaker, "style": style})
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """The README's commands, in order, on the replica and the recordings; each must succeed
    up to steering, whose refusal and the judge's are kept for the tests."""
    root = tmp_path_factory.mktemp("your_own")
    manifest = write_recordings(root / "recordings")
    model_dir = root / "cosyvoice3"
    write_cosyvoice3(model_dir, tokenizer=True, speech_tokenizer=True)
    model = f"cosyvoice3:{model_dir}"
    p = {k: root / k for k in ("corpus", "tokens", "acts", "acts_heldout", "autointerp",
                               "steering", "judge")}
    p["sae"] = root / "sae" / "layer_1"
    p |= {"root": root, "model_dir": model_dir, "model": model}

    ok(cli("interp.corpus", "import", manifest, "--out", p["corpus"], "--workers", "1"))
    p["tokenize_out"] = ok(cli("interp.audio", "tokenize", "--model", model, "--corpus",
                               p["corpus"], "--out", p["tokens"]))
    common = ("--model", model, "--corpus", p["corpus"], "--tokens", p["tokens"], "--layers", "1")
    ok(cli("interp.cache", *common, "--out", p["acts"]))
    ok(cli("interp.cache", *common, "--split", "heldout_sentences,heldout_voices", "--out",
           p["acts_heldout"]))
    ok(cli("sae.train", "--model", model, "--layer", "1", "--store", p["acts"], "--corpus",
           p["corpus"], "--speech-tokens", p["tokens"], "--out", p["sae"], "--d-sae", "32",
           "--k", "4", "--tokens", "2048", "--batch-size", "64", "--buffer", "1000",
           "--eval-examples", "4", "--device", "cpu", "--threads", "1"))
    ok(cli("autointerp.run", "--model", model, "--layer", "1", "--store", p["acts_heldout"],
           "--sae", p["sae"], "--corpus", p["corpus"], "--out", p["autointerp"]))
    p["steer"] = cli("steering.run", "--model", model, "--concept", "whisper", "--groups",
                     "style=whisper", "style=default", "--concept-instruction", "Please whisper.",
                     "--concept-rubric", "Is <audio output> whispered?", "--layer", "1",
                     "--sae", p["sae"], "--store", p["acts"], "--corpus", p["corpus"],
                     "--strength", "0,1,2", "--n", "2", "--out", p["steering"])
    mmae = p["steering"] / "mmae" / "whisper_s2"
    p["judged"] = cli("interp.judge", "--predictions", mmae / "predictions.json", "--metadata",
                      mmae / "MMAE-meta.json", "--audio_root", mmae, "--output_dir", p["judge"],
                      "--backend", "acoustic")
    return p


def test_every_stage_before_steering_wrote_its_files(run):
    from interp.audio.tokenize_corpus import load_tokens
    from interp.corpus.table import label_columns, load_table
    from interp.models.registry import load_backbone

    bb = load_backbone(run["model"], "cpu")
    rows = load_table(run["corpus"])
    assert len(rows) == 40 and label_columns(run["corpus"]) == ["style"]
    assert {r["split"] for r in rows} == {"train", "heldout_sentences", "heldout_voices"}
    assert {r["style"] for r in rows if r["split"] == "train"} == {"default", "whisper"}
    # Tokens by the checkpoint's own speech tokenizer, named in the manifest.
    m = json.loads((run["tokens"] / "manifest.json").read_text())
    assert m["codec"] == bb.token_source() and m["model"] == run["model"]
    assert "speech_tokenizer_v3.onnx" in m["tokenizer"] in run["tokenize_out"]
    tokens = load_tokens(run["tokens"])
    assert set(tokens) == {r["utt_id"] for r in rows}
    r0 = rows[0]
    from interp.corpus.table import load_audio

    assert np.array_equal(tokens[r0["utt_id"]], bb.speech_tokens(*load_audio(run["corpus"], r0)))
    # Stores and the SAE are stamped with the replica.
    for store in ("acts", "acts_heldout"):
        spec = json.loads((run[store] / "manifest.json").read_text())["spec"]
        assert spec["model"] == bb.fingerprint and spec["d_model"] == bb.d_model
    meta = json.loads((run["sae"] / "cfg.json").read_text())["metadata"]
    assert (meta["model"], meta["model_fingerprint"]) == (run["model"], bb.fingerprint)
    assert (run["sae"] / "sae_weights.safetensors").exists()
    # Auto-interp read the corpus's own label column (and not the recordings' paths).
    summary = json.loads((run["autointerp"] / "summary.json").read_text())
    assert summary["n_latents"] == 32 and (run["autointerp"] / "latents.jsonl").exists()
    concepts = {c["concept"] for c in summary["planted_recall"]["concepts"]}
    assert {"label:style=default", "label:style=whisper"} <= concepts
    assert not any(c.startswith("label:source=") for c in concepts)


def test_steering_stops_before_measuring_with_what_to_install(run):
    line = refused(run["steer"])
    assert line.startswith(f"error: cannot steer {run['model']} here: its outputs must be "
                           "rendered to be measured")
    for needed in ("`cosyvoice` package", "github.com/FunAudioLLM/CosyVoice",
                   "cosyvoice3.yaml, flow.pt, hift.pt", str(run["model_dir"])):
        assert needed in line, needed
    assert not run["steering"].exists()  # no token-only figures, no half-made folder
    judged = refused(run["judged"])
    assert "no such file" in judged and "steering.run" in judged
    assert not (run["judge"] / "results.jsonl").exists()


def test_another_models_sae_store_or_tokens_is_refused_in_one_line(run):
    # (a) the replica's SAE with TinyCosy
    line = refused(cli("steering.run", "--model", "tinycosy", "--concept", "whisper", "--groups",
                       "style=whisper", "style=default", "--layer", "1", "--sae", run["sae"],
                       "--store", run["acts"], "--corpus", run["corpus"], "--n", "1",
                       "--out", run["root"] / "steer_tinycosy"))
    assert "SAE for cosyvoice3" in line and f"--model {run['model']}" in line
    # (b) the replica's store given to sae.train (and to autointerp) with another model
    line = refused(cli("sae.train", "--model", "tinycosy", "--layer", "1", "--store", run["acts"],
                       "--corpus", run["corpus"], "--speech-tokens", run["tokens"], "--out",
                       run["root"] / "sae_tinycosy", "--d-sae", "32", "--k", "4", "--tokens",
                       "256", "--batch-size", "64", "--device", "cpu", "--threads", "1"))
    assert str(run["acts"]) in line and "another model than tinycosy" in line
    assert not (run["root"] / "sae_tinycosy" / "cfg.json").exists()
    line = refused(cli("autointerp.run", "--model", "tinycosy", "--layer", "1", "--store",
                       run["acts_heldout"], "--sae", run["sae"], "--corpus", run["corpus"],
                       "--out", run["root"] / "autointerp_tinycosy"))
    assert "not cached from tinycosy" in line
    # (c) the corpus tokenized with the project codec (`interp.audio tokenize` without --model),
    # cached with the replica
    codec_tokens = run["root"] / "codec_tokens"
    ok(cli("interp.audio", "tokenize", "--corpus", run["corpus"], "--codec", CODEC_DIR,
           "--out", codec_tokens, "--workers", "1"))
    line = refused(cli("interp.cache", "--model", run["model"], "--corpus", run["corpus"],
                       "--tokens", codec_tokens, "--layers", "1", "--out",
                       run["root"] / "acts_codec"))
    assert f"{codec_tokens} holds speech tokens of the codec in" in line
    assert f"python -m interp.audio tokenize --model {run['model']}" in line
    assert not (run["root"] / "acts_codec" / "manifest.json").exists()
