"""Loading and validating MMAE files: clear one-line errors naming the sample id; the writer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from interp.judge import (
    JudgeConfig,
    JudgeDataError,
    build_sample,
    load_metadata,
    load_predictions,
    write_mmae_sample,
    write_mmae_set,
)
from interp.judge.__main__ import main
from interp.judge.runner import load_items
from interp.judge.testing import speechlike

SR = 16000
RUB = {"category": "Instruction Following", "question": "Gender of <audio output>?",
       "right_choice": "Female", "wrong_choices": ["Male", "None of the above"]}


def _set(root: Path) -> tuple[Path, Path, str]:
    meta, pred = build_sample(root, "make it female", (speechlike(120), SR), (speechlike(220), SR),
                              [RUB])
    m, p = write_mmae_set(root, [(meta, pred)])
    return m, p, meta["id"]


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data[0])
    path.write_text(json.dumps(data))


def _cfg(root: Path, m: Path, p: Path, sample_rate: int | None = None) -> JudgeConfig:
    return JudgeConfig(p, m, root, root / "out", backend="acoustic", sample_rate=sample_rate)


def _error(root: Path, m: Path, p: Path, sample_rate: int | None = None) -> str:
    with pytest.raises(JudgeDataError) as e:
        load_items(_cfg(root, m, p, sample_rate))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_writer_roundtrip(tmp_path: Path) -> None:
    m, p, sid = _set(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{24}", sid)
    assert _set(tmp_path)[2] == sid  # deterministic id
    s = load_metadata(m)[sid]
    assert s.input_audios == (f"wav/{sid}/audio1.wav",) and s.instruction == "make it female"
    assert load_predictions(p)[0].output_audio == f"pred/{sid}/output.wav"
    items = load_items(_cfg(tmp_path, m, p))
    assert Path(items[0].output_path).exists()
    sid2 = write_mmae_sample(tmp_path, "again", (speechlike(150), SR), (speechlike(150), SR), [RUB])
    assert set(load_metadata(m)) == {sid, sid2}


@pytest.mark.parametrize("field", ["right_choice", "wrong_choices", "category", "question"])
def test_missing_rubric_field(tmp_path: Path, field: str) -> None:
    m, p, sid = _set(tmp_path)
    _edit(m, lambda d: d["rubrics"][0].pop(field))
    msg = _error(tmp_path, m, p)
    assert sid in msg and field in msg


def test_bad_metadata_and_audio(tmp_path: Path) -> None:
    m, p, sid = _set(tmp_path)
    _edit(m, lambda d: d.__setitem__("rubrics", []))
    assert sid in _error(tmp_path, m, p)
    m, p, sid = _set(tmp_path)  # rewrite a good set
    _edit(m, lambda d: d["rubrics"][0].__setitem__("question", "Is <audio input3> kept?"))
    assert sid in _error(tmp_path, m, p) and "input3" in _error(tmp_path, m, p)
    m, p, sid = _set(tmp_path)
    _edit(m, lambda d: d["rubrics"][0].__setitem__("question", "Is <audio input1>[9:10] kept?"))
    assert "starts after" in _error(tmp_path, m, p)
    m, p, sid = _set(tmp_path)
    inp = tmp_path / "wav" / sid / "audio1.wav"
    sf.write(inp, np.zeros(8000, dtype=np.float32), 8000)
    msg = _error(tmp_path, m, p, sample_rate=16000)
    assert sid in msg and "8000" in msg and "sample rate" in msg
    inp.write_bytes(b"RIFF garbage, not a wav")
    msg = _error(tmp_path, m, p)
    assert sid in msg and "unreadable" in msg
    inp.unlink()
    msg = _error(tmp_path, m, p)
    assert sid in msg and "not found" in msg


def test_prediction_without_metadata(tmp_path: Path) -> None:
    m, p, sid = _set(tmp_path)
    _edit(p, lambda d: d.__setitem__("id", "f" * 24))
    msg = _error(tmp_path, m, p)
    assert "f" * 24 in msg and "no metadata" in msg
    _edit(p, lambda d: d.__setitem__("messages", d["messages"][:1]))
    with pytest.raises(JudgeDataError, match="no assistant audio"):
        load_predictions(p)


def test_cli_reports_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m, p, sid = _set(tmp_path)
    (tmp_path / "pred" / sid / "output.wav").unlink()
    rc = main(["--predictions", str(p), "--metadata", str(m), "--audio_root", str(tmp_path),
               "--output_dir", str(tmp_path / "out"), "--backend", "acoustic", "--no_progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: sample " + sid) and "\n" not in err
    with pytest.raises(SystemExit):
        main(["--predictions", str(p), "--metadata", str(m), "--output_dir", "x"])  # no base_urls
