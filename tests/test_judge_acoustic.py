"""The acoustic judge: measured answers, unsupported without instruments, the two controls."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from interp.judge import (
    ASR,
    LAUGHTER,
    AcousticConfig,
    JudgeConfig,
    build_sample,
    judge,
    register_instrument,
    write_controls,
    write_mmae_set,
)
from interp.judge import acoustic_backend as ab
from interp.judge.__main__ import main
from interp.judge.acoustics import pitch_track
from interp.judge.records import read_results
from interp.judge.testing import speechlike

SR = 16000
IF, CR = "Instruction Following", "Consistency"


@pytest.fixture(autouse=True)
def no_instruments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with no registered instrument and no plugin import."""
    monkeypatch.setattr(ab, "_INSTRUMENTS", {})
    monkeypatch.setattr(ab, "_PLUGINS_TRIED", True)


def rub(cat: str, q: str, right: str, wrong: list[str]) -> dict:
    return {"category": cat, "question": q, "right_choice": right, "wrong_choices": wrong}


GENDER_IF = rub(IF, "What is the gender of the speaker in <audio output>?", "Female",
                ["Male", "None of the above"])
RATE_CR = rub(CR, "Compared with <audio input1>, is the speaking rate of <audio output> faster,"
              " slower or about the same?", "About the same", ["Faster", "Slower",
                                                               "None of the above"])


def run(root: Path, pairs: list, out: str = "out", **kw) -> tuple[dict, dict, dict]:
    m, p = write_mmae_set(root, pairs)
    s = judge(JudgeConfig(p, m, root, root / out, backend="acoustic", **kw))
    return s, read_results(root / out / "results.jsonl"), json.loads(
        (root / out / "per_sample.json").read_text())


def test_pitch_tracker() -> None:
    for f0 in (110, 230):
        tr = pitch_track(speechlike(f0), SR)
        assert abs(tr.median_f0 - f0) < 0.05 * f0 and 0.8 < tr.voiced_duration < 1.3
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    assert pitch_track(noise, SR).voiced_duration < 0.1


def test_gender_rate_pitch_answers(tmp_path: Path) -> None:
    male, female = speechlike(120), speechlike(220)
    fast = speechlike(120, syllable_s=0.1, gap_s=0.05)
    rubrics = [
        GENDER_IF,
        rub(IF, "Is the speaker in <audio output> a man?", "No", ["Yes"]),
        rub(IF, "Is <audio output> faster or slower than <audio input1>?", "Faster",
            ["Slower", "About the same"]),
        rub(IF, "Is the pitch of <audio output> higher or lower than <audio input1>?",
            "Lower", ["Higher", "The same", "None of the above"]),
        rub(CR, "What is the gender of the speaker in <audio input1>?", "Male", ["Female"]),
        rub(CR, "Is <audio output> spoken by the same speaker as <audio input1>?", "No",
            ["Yes"]),
    ]
    # output: female pitch, faster; pitch question's right answer is deliberately wrong
    out = np.concatenate([speechlike(220, syllable_s=0.1, gap_s=0.05)])
    s, recs, ps = run(tmp_path, [build_sample(tmp_path, "i", (male, SR), (out, SR), rubrics)])
    by_rubric = {}
    for r in recs.values():
        by_rubric.setdefault(r["rubric_index"], []).append(r)
    assert all(r["status"] == "ok" for r in recs.values())
    assert [all(r["correct"] for r in by_rubric[i]) for i in range(6)] == [
        True, True, True, False, True, True]
    assert by_rubric[3][0]["measurement"]["verdict"] == "higher"
    assert by_rubric[0][0]["measurement"]["median_f0_hz"] > 200
    sid = next(iter(ps))
    assert ps[sid]["IFR"] == 0.75 and ps[sid]["CR"] == 1.0 and ps[sid]["EMR"] == 0
    # slower and same rate
    s2, recs2, _ = run(tmp_path, [build_sample(tmp_path, "i", (fast, SR), (female, SR), [
        rub(IF, "Is <audio output> faster or slower than <audio input1>?", "Slower",
            ["Faster"]), RATE_CR])], out="out2")
    assert [r["correct"] for r in recs2.values()].count(True) == 3
    assert {r["measurement"]["verdict"] for r in recs2.values()} == {"slower"}


def test_unsupported_without_instruments(tmp_path: Path) -> None:
    rubrics = [rub(IF, "Does <audio output> contain laughter?", "Yes", ["No"]),
               rub(CR, "Does <audio output> say the same words as <audio input1>?", "Yes",
                   ["No"]),
               rub(CR, "Is the background music preserved?", "Yes", ["No"]),
               GENDER_IF]
    pair = build_sample(tmp_path, "i", (speechlike(120), SR), (speechlike(220), SR), rubrics)
    s, recs, ps = run(tmp_path, [pair])
    status = {(r["rubric_index"]): r["status"] for r in recs.values()}
    assert status == {0: "unsupported", 1: "unsupported", 2: "unsupported", 3: "ok"}
    assert "laughter" in recs[(pair[0]["id"], 0, 0)]["error"]
    e = ps[pair[0]["id"]]
    assert e["unsupported"] == 3 and e["IFR"] == 0.5 and e["IFR_supported"] == 1.0
    assert e["CR"] == 0.0 and e["CR_supported"] is None and e["EMR"] == 0
    assert s["queries_unsupported"] == 9 and s["overall"]["unsupported"] == 3
    # with instruments registered, the same questions are answered by measurement
    register_instrument(LAUGHTER, lambda x, sr: 0.9)
    register_instrument(ASR, lambda x, sr: "hello world")
    s, recs, ps = run(tmp_path, [pair], out="out_instr")
    assert ps[pair[0]["id"]]["unsupported"] == 1  # the music question still is
    assert all(r["correct"] for r in recs.values() if r["rubric_index"] in (0, 1))


def test_controls_identity_and_noise(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pairs = [build_sample(data, f"make speaker {k} female", (speechlike(f0), SR),
                          (speechlike(230), SR), [GENDER_IF, RATE_CR])
             for k, f0 in enumerate((110, 125))]
    m, _ = write_mmae_set(data, pairs)
    paths = write_controls(m, data, tmp_path / "controls", seed=3)
    ident = json.loads(paths["identity"].read_text())
    assert ident[0]["messages"][-1]["content"][0]["audio_url"] == ident[0]["messages"][0][
        "content"][1]["audio_url"]
    noise_wav = ident and json.loads(paths["noise"].read_text())[0]["messages"][-1]["content"][0][
        "audio_url"]
    x, sr = sf.read(noise_wav)
    assert sr == SR and len(x) == len(speechlike(110))
    again = write_controls(m, data, tmp_path / "controls2", seed=3)
    noise2 = json.loads(again["noise"].read_text())[0]["messages"][-1]["content"][0]["audio_url"]
    assert np.array_equal(sf.read(noise2)[0], x)  # seeded
    res = {}
    for name, pred in paths.items():
        s = judge(JudgeConfig(pred, m, data, tmp_path / f"judge_{name}", backend="acoustic"))
        res[name] = s["overall"]
    assert res["identity"]["IFR"] == 0.0 and res["identity"]["CR"] == 100.0
    assert res["noise"]["IFR"] == 0.0 and res["noise"]["CR"] == 0.0
    assert res["noise"]["unsupported"] == 0  # noise maps to "None of the above": plain wrong


def test_cli_acoustic_and_controls(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pair = build_sample(tmp_path, "i", (speechlike(120), SR), (speechlike(220), SR), [GENDER_IF])
    m, p = write_mmae_set(tmp_path, [pair])
    args = ["--predictions", str(p), "--metadata", str(m), "--audio_root", str(tmp_path),
            "--output_dir", str(tmp_path / "cli"), "--backend", "acoustic", "--no_progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "IFR 100.00" in out and "EMR 100.00" in out
    for f in ("results.jsonl", "per_sample.json", "taxonomy.json"):
        assert (tmp_path / "cli" / f).exists()
    assert main(args) == 0 and "asked 0, resumed 3" in capsys.readouterr().out
    assert main(["controls", "--metadata", str(m), "--audio_root", str(tmp_path),
                 "--out", str(tmp_path / "ctl")]) == 0
    assert (tmp_path / "ctl" / "noise" / "predictions.json").exists()


def test_acoustic_config_threshold(tmp_path: Path) -> None:
    pair = build_sample(tmp_path, "i", (speechlike(120), SR), (speechlike(170), SR), [GENDER_IF])
    _, recs, _ = run(tmp_path, [pair], acoustic=AcousticConfig(gender_threshold_hz=180))
    assert {r["measurement"]["verdict"] for r in recs.values()} == {"male"}


def _espeak(path: Path, voice: str, text: str, speed: int = 175) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True, timeout=30)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_voices(tmp_path: Path) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    _espeak(tmp_path / "m.wav", "en-us+m3", text)
    _espeak(tmp_path / "f.wav", "en-us+f2", text)
    _espeak(tmp_path / "mfast.wav", "en-us+m3", text, speed=280)
    rubrics = [GENDER_IF, rub(IF, "Is <audio output> faster or slower than <audio input1>?",
                              "Faster", ["Slower", "About the same"])]
    pairs = [build_sample(tmp_path / "d", "female", tmp_path / "m.wav", tmp_path / "f.wav",
                          [GENDER_IF]),
             build_sample(tmp_path / "d", "faster", tmp_path / "m.wav", tmp_path / "mfast.wav",
                          rubrics)]
    _, recs, ps = run(tmp_path / "d", pairs)
    verdicts = {(r["id"][:4], r["rubric_index"]): r["measurement"]["verdict"]
                for r in recs.values()}
    assert sorted(set(verdicts.values())) == ["faster", "female", "male"]
    assert [ps[p[0]["id"]]["IFR"] for p in pairs] == [1.0, 0.5]


def test_instruments_from_steering_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake = types.ModuleType("interp.instruments")
    fake.JUDGE_INSTRUMENTS = {LAUGHTER: lambda x, sr: 0.0}
    monkeypatch.setitem(sys.modules, "interp.instruments", fake)
    monkeypatch.setattr(ab, "_PLUGINS_TRIED", False)
    assert ab.get_instrument(LAUGHTER) is fake.JUDGE_INSTRUMENTS[LAUGHTER]
    assert ab.get_instrument(ASR) is None


def test_cli_parses_into_configs_that_run_alone(tmp_path: Path, capsys) -> None:
    """The MMAE flags parse into the JudgeConfig a notebook writes; `run_judge` and
    `run_controls` take configs, no Namespace."""
    from interp.judge.__main__ import (
        ControlsConfig,
        ShowOptions,
        parse_judge_args,
        run_controls,
        run_judge,
    )

    pair = build_sample(tmp_path, "i", (speechlike(120), SR), (speechlike(220), SR), [GENDER_IF])
    m, p = write_mmae_set(tmp_path, [pair])
    cfg = JudgeConfig(p, m, tmp_path, tmp_path / "out", backend="acoustic", n_queries=1,
                      pass_threshold=1, acoustic=AcousticConfig(gender_threshold_hz=150.0))
    parsed, show = parse_judge_args(
        ["--predictions", str(p), "--metadata", str(m), "--audio_root", str(tmp_path),
         "--output_dir", str(tmp_path / "out"), "--backend", "acoustic", "--n_queries", "1",
         "--pass_threshold", "1", "--gender_threshold_hz", "150", "--no_progress"])
    assert parsed == dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, base_urls=()))
    assert show == ShowOptions(progress=False)
    assert run_judge(cfg, show) == 0 and "IFR 100.00" in capsys.readouterr().out
    paths = run_controls(ControlsConfig(m, tmp_path / "ctl", audio_root=tmp_path))
    assert set(paths) == {"identity", "noise"} and paths["noise"].exists()
