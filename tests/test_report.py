"""The demo report: reads each stage's JSON, says what has not run, writes self-contained HTML."""

from __future__ import annotations

import json

import pytest

from workbench.report import build_report, write_report


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


def test_steering_and_tinyedit_sections_show_judge_scores(tmp_path):
    from workbench.report.steering import edit_steering_section, judge_section, tinyedit_section

    judged = {"IFR": 75.0, "CR": 40.0, "EMR": None}
    (tmp_path / "steering" / "laughter").mkdir(parents=True)
    (tmp_path / "steering" / "laughter" / "summary.json").write_text(json.dumps(
        {"judge": {"sae": judged | {"n": 4}}}))
    (tmp_path / "tinyedit_edits").mkdir()
    (tmp_path / "tinyedit_edits" / "eval.json").write_text(json.dumps({
        "by_operation": {"gender": {"tinyedit": {"edit_done": 1.0, "speaker_kept": 0.5,
                                                 "wer": 0.9}, "mmae_operation": "alteration",
                                    "n": 2}},
        "mmae_acoustic_judge": {"tinyedit": {"overall": judged, "n": 2}}}))
    assert not edit_steering_section(tmp_path).ran  # no edit_compare run yet
    (tmp_path / "tinyedit_steer").mkdir()
    (tmp_path / "tinyedit_steer" / "summary.json").write_text(json.dumps({
        "summary": {"gender": {"steer": {"edit_done": {"mean": 1.0, "n": 3}}}},
        "judge": {"steer": {"overall": judged, "n": 3}}}))
    rows = {s.title: [r.figure + " = " + str(r.ours) for r in s.rows]
            for s in (judge_section(tmp_path), tinyedit_section(tmp_path),
                      edit_steering_section(tmp_path))}
    text = "\n".join(sum(rows.values(), []))
    assert "laughter: sae = IFR 75.0 · CR 40.0 · EMR — (n 4)" in text  # a missing score is a dash
    assert "judge: tinyedit = IFR 75.0 · CR 40.0 · EMR — (n 2)" in text
    assert "gender: edit done by method = steer 1.000 (n 3)" in text


def test_tinycosy_section_shows_word_recall(tmp_path):
    from workbench.report.sections import tinycosy_section

    (tmp_path / "tinycosy").mkdir()
    (tmp_path / "tinycosy" / "eval.json").write_text(json.dumps(
        {"wer": 0.5, "word_recall": {"template": 0.9, "slot": 0.2}}))
    rows = {r.figure: r.ours for r in tinycosy_section(tmp_path).rows}
    assert rows["words heard: the template's fixed words"] == 0.9
    assert rows["words heard: slot words (the content)"] == 0.2


def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield k
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def test_report_names_no_absolute_path_of_this_machine(tmp_path):
    """Sources read from the repository (`data/…`, `benchmarks/…`) are relative to its root,
    those of a run folder relative to the run, and a path a stage recorded in its settings is
    made relative too: nothing in report.json or report.html points into this machine."""
    from interp.paths import REPO
    from workbench.report.sections import relative_source

    run = tmp_path / "demo"
    (run / "autointerp" / "layer_12").mkdir(parents=True)
    (run / "autointerp" / "layer_12" / "summary.json").write_text(json.dumps({
        "layer": 12, "modality_counts": {"audio": 1},
        "auroc_by_modality": {m: {"mean": 0.7, "n": 3} for m in ("text", "audio", "mixed")},
        "shuffled_control": {m: {"mean": 0.5} for m in ("text", "audio", "mixed")},
        "paper_auroc_cosyvoice3": {"text": 0.921, "audio": 0.653, "mixed": 0.558},
        "planted_recall": {"recall": 0.5, "concepts": []},
        "settings": {"explainer": "offline", "scorer": "detection",
                     "sae": str(REPO / "data" / "sae" / "layer_12"),
                     "out": str(run / "autointerp" / "layer_12")}}))
    report = build_report(run)
    j, h = write_report(report, run)
    data, page = json.loads(j.read_text()), h.read_text()
    sources = {r["source"] for s in data["sections"] for r in s["rows"]}
    assert "demo/autointerp/layer_12/summary.json" in sources  # the run's, relative to it
    assert (REPO / "data/sae/layer_12/metrics.json").exists()
    assert "data/sae/layer_12/metrics.json" in sources  # the shipped SAE, relative to the repo
    assert data["run"] == "demo"
    for text in _strings(data):
        assert not text.startswith("/"), text
    for text in (j.read_text(), page):
        for absolute in (str(REPO), str(REPO.resolve()), str(tmp_path), "/work/", "/home/",
                         "/root/"):
            assert absolute not in text, absolute
    assert "SAE data/sae/layer_12" in page
    # the shipped SAE's row names its recipe as its metrics.json says, not a string of the past
    shipped = json.loads((REPO / "data/sae/layer_12/metrics.json").read_text())
    recipe = f"k {shipped['k']}, {shipped['training']['steps'] // 1000}k steps"
    assert any(r["figure"].startswith(f"shipped layer-12 SAE ({recipe})")
               for s in data["sections"] for r in s["rows"]), recipe
    from workbench.report.sections import sae_recipe

    assert sae_recipe({"k": 32, "config": {"tokens": 40_960_000, "batch_size": 1024}}) == \
        "k 32, 40k steps"  # no training block: from the config
    assert sae_recipe({"k": 16, "training": {"steps": 2500}}) == "k 16, 2.5k steps"
    assert sae_recipe({"k": 16}) == "k 16"  # nothing says how long: no "0k steps"
    assert relative_source(REPO / "runs" / "demo" / "x.json", REPO / "runs" / "demo") == \
        "runs/demo/x.json"
