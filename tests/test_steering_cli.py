"""`python -m steering.run` on the tiny fixtures: outputs, judge, resume, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from interp.cli import run_cli
from steering import run as steer_run
from steering.experiment import ROWS, Steerer


@pytest.fixture(scope="module")
def tiny_args(tiny_tinycosy, tiny_codec_dir, tiny_sae, tiny_store, tiny_corpus) -> dict:
    return {"layer": "1", "model": str(tiny_tinycosy[0]),
            "sae": str(tiny_sae), "store": str(tiny_store), "corpus": str(tiny_corpus),
            "k": "3", "max-positions": "400"}


def flags(d: dict) -> list[str]:
    return [x for k, v in d.items() for x in (f"--{k}", str(v))]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_args):
    out = tmp_path_factory.mktemp("steer") / "laughter"
    args = {**tiny_args, "concept": "laughter", "n": 2, "strength": "0,2", "out": out,
            "judge": "acoustic"}
    proc = subprocess.run([sys.executable, "-m", "steering.run", *flags(args)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, args, proc.stdout


@pytest.mark.slow
def test_cli_end_to_end(finished_run):
    out, _, stdout = finished_run
    s = json.loads((out / "summary.json").read_text())
    assert s["sae"]["layer"] == 1 and s["sae"]["latents"] == sorted(s["sae"]["latents"])
    assert 0 < len(s["sae"]["by_target"]["laughter"]) <= 3
    methods = {(e["method"], e["strength"]) for e in s["results"]}
    for m in ("sae", "decoder", "diffmeans", "random_latents", "random_direction"):
        assert {(m, 0.0), (m, 2.0)} <= methods
    assert ("prompt", 1.0) in methods and ("none", 0.0) in methods
    e = s["results"][0]["laughter"]
    assert set(e) == {"mean", "ci95", "n"} and e["n"] == 2
    assert set(s["effects"]["laughter"]["2"]) >= {"sae", "random_latents", "wer_change_points"}
    judged = s["judge"]
    assert set(judged) == {"laughter_s2", "identity (laughter_s2)", "noise (laughter_s2)"}
    assert judged["identity (laughter_s2)"]["CR"] >= judged["noise (laughter_s2)"]["CR"]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * (1 + 5 + 1)
    html = (out / "dose_response.html").read_text()
    assert len(html) > 1_000_000 and '<script src="https://cdn' not in html
    assert (out / "mmae" / "laughter_s2" / "MMAE-meta.json").exists()
    assert "steering laughter" in stdout


@pytest.mark.slow
def test_resume_does_not_regenerate(finished_run, monkeypatch):
    out, args, _ = finished_run
    calls = []
    real = Steerer.tokens
    monkeypatch.setattr(Steerer, "tokens", lambda self, u: calls.append(u.key) or real(self, u))
    cfg = steer_run.SteeringConfig(
        concept="laughter", layer=1, strength="0,2", n=2, k=3, model=args["model"],
        sae=args["sae"], store=args["store"], corpus=args["corpus"],
        max_positions=400, out=str(out))
    steer_run.run_steering(cfg)
    assert calls == []
    rows = (out / ROWS).read_text().splitlines()
    (out / ROWS).write_text("\n".join(rows[:-1]) + "\n" + rows[-1][:20])  # a killed run
    steer_run.run_steering(cfg)
    assert calls == [json.loads(rows[-1])["key"]]


@pytest.mark.slow
def test_the_judge_scores_the_methods_it_is_asked_to(finished_run, tmp_path):
    import shutil

    src, args, _ = finished_run
    out = tmp_path / "laughter"
    shutil.copytree(src, out)
    cfg = steer_run.SteeringConfig(
        concept="laughter", layer=1, strength="0,2", n=2, k=3, model=args["model"],
        sae=args["sae"], store=args["store"], corpus=args["corpus"], max_positions=400,
        out=str(out), methods="sae,sae_shift,prompt", judge="acoustic",
        judge_methods="sae,sae_shift")
    judged = steer_run.run_steering(cfg)["judge"]
    assert {"laughter_s2", "sae_shift/laughter_s2"} <= set(judged)
    assert sum(k.startswith("identity") for k in judged) == 1  # one Identity control per target
    assert judged["sae_shift/laughter_s2"]["n"] == 2
    assert (out / "mmae" / "sae_shift" / "laughter_s2" / "MMAE-meta.json").exists()
    for bad in ("prompt", "diffmeans"):  # strength-free, or not run
        with pytest.raises(ValueError, match="--judge-methods"):
            steer_run.SteeringConfig(concept="laughter", methods="sae,sae_shift,prompt",
                                     judge_methods=bad).validate()


@pytest.mark.parametrize("bad, message", [
    ({"concept": "whisper"}, "unknown concept"),
    ({"concept": "gender", "layer": "0"}, "cannot be used at blocks.0"),
    ({"concept": "gender", "model": None}, "d_in"),
    ({"concept": "rate", "strength": "fast"}, "--strength"),
])
def test_bad_input_is_one_line(tiny_args, bad, message, monkeypatch, capsys, tmp_path):
    args = {k: v for k, v in {**tiny_args, "out": tmp_path, **bad}.items() if v is not None}
    monkeypatch.setattr(sys, "argv", ["steering.run", *flags(args)])
    with pytest.raises(SystemExit) as exc:
        run_cli(steer_run.main)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_k_defaults_per_concept():
    """Gender needs more latents than laughter or rate (README, Steering); an explicit --k wins."""
    cfg = steer_run.SteeringConfig
    assert cfg(concept="gender").resolved().k == 16
    assert cfg(concept="laughter").resolved().k == cfg(concept="rate").resolved().k == 8
    assert cfg(concept="gender", k=4).resolved().k == 4
    with pytest.raises(ValueError, match="--k"):
        cfg(concept="gender", k=-1).validate()


def test_a_folder_whose_sae_was_replaced_in_place_is_refused(tiny_args, tmp_path, caplog):
    """Outputs are reused by key: a folder made with an SAE since retrained at the same path
    must say so, not mix the old SAE's rows with the new one's."""
    import shutil

    from sae_lens.constants import SAE_WEIGHTS_FILENAME
    from safetensors.torch import load_file, save_file

    sae, out = tmp_path / "sae", tmp_path / "out"
    shutil.copytree(tiny_args["sae"], sae)
    cfg = steer_run.SteeringConfig(
        concept="laughter", layer=1, n=1, k=3, model=tiny_args["model"], sae=str(sae),
        store=tiny_args["store"], corpus=tiny_args["corpus"], max_positions=400, out=str(out))
    steer_run.prepare(cfg.resolved())
    saved = json.loads((out / "selection.json").read_text())
    assert len(saved["sae_weights"]) == 16
    steer_run.prepare(cfg.resolved())  # the same SAE resumes
    weights = load_file(sae / SAE_WEIGHTS_FILENAME)
    save_file({k: v * 1.01 if k == "W_dec" else v for k, v in weights.items()},
              sae / SAE_WEIGHTS_FILENAME)
    with pytest.raises(ValueError, match="other weights of .* retrained or replaced"):
        steer_run.prepare(cfg.resolved())
    # a folder from before the weights were recorded resumes, with a warning
    (out / "selection.json").write_text(json.dumps(
        {k: v for k, v in saved.items() if k != "sae_weights"}))
    steer_run.prepare(cfg.resolved())
    assert "before SAE weights were recorded" in caplog.text
