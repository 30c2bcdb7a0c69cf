"""The demo report: reads each stage's JSON, says what has not run, writes self-contained HTML."""

from __future__ import annotations

import json

import pytest

from interp.report import build_report, write_report


def test_report_reads_stage_files_and_flags_missing_ones(tmp_path):
    (tmp_path / "sae" / "layer_12").mkdir(parents=True)
    (tmp_path / "sae" / "layer_12" / "metrics.json").write_text(json.dumps(
        {"explained_variance": 0.93, "l0": 16.2, "dead_frac": 0.1, "loss_recovered": 0.97,
         "pitfall_check": {"ok": True}}))
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({"layers": [
        {"layer": L, "explained_variance": 0.9, "explained_variance_text": 0.95,
         "explained_variance_speech": 0.85, "loss_recovered": 0.9, "audio_frac": 0.5,
         "mixed_frac": 0.2, "text_frac": 0.2, "inactive_frac": 0.1} for L in (4, 12)]}))
    report = build_report(tmp_path)
    by_title = {s.title: s for s in report.sections}
    sae = by_title["Layer-12 SAE"]
    mine = [r.ours for r in sae.rows if r.figure.startswith("this run's")]
    assert sae.ran and mine[:2] == [0.93, 16.2]
    assert not by_title["Speech codec round trip (held-out voices)"].ran
    j, h = write_report(report, tmp_path)
    page = h.read_text()
    assert page.count("plotly.js v") == 1 and '<script src="http' not in page  # JS inlined once
    assert "not run yet" in page and "0.930" in page
    assert json.loads(j.read_text())["sections"][0]["title"]


def test_missing_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="make demo"):
        build_report(tmp_path / "nope")
