"""The dashboard builder: site layout, compact index, clips with envelopes, steering links, and
one-line errors that say what to run when the auto-interp output is missing or malformed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autointerp.dashboard.build import BuildConfig, build_site
from autointerp.dashboard.synthetic import write_layer, write_steering


def _build(tmp_path: Path, **kw) -> Path:
    return build_site(BuildConfig(autointerp=str(tmp_path / "autointerp"), **kw))


@pytest.fixture
def layer12(tmp_path) -> Path:
    return write_layer(tmp_path / "autointerp" / "layer_12", n=16, n_evidence=4)


def test_site_layout_index_and_latent_pages(tmp_path, layer12):
    write_layer(tmp_path / "autointerp" / "layer_6", n=8, n_evidence=1, seed=3)
    write_steering(tmp_path / "steering", layer=12, latents=[0, 1])
    write_steering(tmp_path / "steering", layer=6, latents=[0], concept="gender")
    (tmp_path / "steering" / "broken").mkdir()
    (tmp_path / "steering" / "broken" / "summary.json").write_text("{oops")
    site = _build(tmp_path, layers="12,6")
    assert site == tmp_path / "dashboard"  # default: beside --autointerp
    for f in ("index.html", "static/app.js", "static/latent.js", "static/style.css",
              "static/plotly.min.js"):
        assert (site / f).is_file(), f
    meta = json.loads((site / "data/site.json").read_text())
    assert [e["layer"] for e in meta["layers"]] == [12, 6]
    assert meta["layers"][0]["counts"] == {"audio": 4, "text": 4, "mixed": 4, "dead": 4}
    cards = {c["name"]: c for c in meta["layers"][0]["cards"]}
    assert cards["Latents"]["value"] == 16 and cards["Audio-modal latents"]["value"] == 4
    assert meta["steering_runs"] == 2
    assert meta["autointerp"] == "../autointerp"  # relative: no absolute path of this machine
    assert str(tmp_path) not in (site / "data/site.json").read_text()

    idx = json.loads((site / "data/layer_12/index.json").read_text())
    cols = idx["columns"]
    assert cols["latent"] == list(range(16))
    assert {len(v) for v in cols.values()} == {16}
    assert [idx["modalities"][m] for m in cols["modality"][:4]] == ["audio", "text", "mixed", "dead"]
    assert cols["auroc"][3] is None and cols["label"][3] is None  # dead latent

    page = json.loads((site / "data/layer_12/latents/latent_00000.json").read_text())
    assert page["label"].startswith("laughter onset") and page["explainer"] == "synthetic"
    assert [r["concept"] for r in page["steering"]] == ["laughter"]
    run = page["steering"][0]
    assert run["targets"] == ["laughter"] and list(run["metrics"])[0] == "effects.laughter.4.sae"
    assert run["metrics"]["effects.laughter.4.sae"] == 0.776 and run["metrics"]["seconds"] == 12.5
    assert run["metrics"]["effects.laughter.4.goals.wer_rise_le_10"] is True
    assert not any(k.startswith(("results", "config", "sae.")) for k in run["metrics"])
    clip = page["evidence"]["top"][0]["clip"]
    assert (site / "data/layer_12" / clip["wav"]).read_bytes() == \
        (layer12 / "clips/latent_00000_00.wav").read_bytes()
    assert clip["env"]["duration"] == pytest.approx(1.0) and len(clip["env"]["hi"]) == 200
    assert clip["trace"][0][0] >= 0 and clip["trace"][-1][0] <= 1.0  # made clip-relative
    no_wav = page["evidence"]["random"][0]["clip"]  # beyond --n-clips: a trace, no audio
    assert no_wav["wav"] is None and no_wav["env"] is None and no_wav["duration"] == 1.0
    assert len(no_wav["trace"]) == 25
    text_page = json.loads((site / "data/layer_12/latents/latent_00001.json").read_text())
    window = text_page["evidence"]["top"][0]["text"]
    assert len(window["tokens"]) == len(window["acts"]) and window["center"] == 5
    assert len(text_page["evidence"]["logit_lens"]["promoted"]) == 8
    dead = json.loads((site / "data/layer_12/latents/latent_00003.json").read_text())
    assert dead["evidence"] is None and dead["steering"] == []
    layer6 = json.loads((site / "data/layer_6/latents/latent_00000.json").read_text())
    assert [r["concept"] for r in layer6["steering"]] == ["gender"]


def test_latent_page_says_what_it_does(tmp_path, layer12):
    """The output side (autointerp.output_side) reaches the page: its sentence, the two code
    profiles, and the renderings of the promoted / suppressed codes copied as clips; the page
    script shows it as "What it does" beside "What activates it"."""
    ev = json.loads((layer12 / "evidence/latent_00001.json").read_text())
    ev["output_side"]["promoted_profile"]["f0_hz"] = float("nan")  # JSON has no NaN: dropped
    (layer12 / "evidence/latent_00001.json").write_text(json.dumps(ev))
    ev2 = json.loads((layer12 / "evidence/latent_00002.json").read_text())
    ev2["output_side"] = None  # a model without a code profile
    ev2["intervention"] = {"text": "turned up alone (+4× its max activation, 3 sentences): "
                                   "F0 +12%", "deltas": {"f0_pct": 12.0, "wer_points": None}}
    (layer12 / "evidence/latent_00002.json").write_text(json.dumps(ev2))
    site = _build(tmp_path, layer=12)
    page = json.loads((site / "data/layer_12/latents/latent_00000.json").read_text())
    out = page["evidence"]["output_side"]
    assert out["text"].startswith("promotes louder higher-pitched voiced frames: +20% F0")
    assert out["promoted"]["f0_hz"] == 120.0 and out["deltas"]["energy_db"] == 6.0
    for side in ("promoted", "suppressed"):
        assert (site / "data/layer_12" / out["wav"][side]).read_bytes() == \
            (layer12 / f"clips/latent_00000_out_{side}.wav").read_bytes()
    one = json.loads((site / "data/layer_12/latents/latent_00001.json").read_text())
    assert one["evidence"]["output_side"]["promoted"]["f0_hz"] is None
    two = json.loads((site / "data/layer_12/latents/latent_00002.json").read_text())
    assert two["evidence"]["output_side"] is None
    assert two["evidence"]["intervention"]["deltas"] == {"f0_pct": 12.0, "wer_points": None}
    assert page["evidence"]["intervention"] is None
    js = (site / "static/latent.js").read_text()
    assert "What it does" in js and "What activates it" in js and "out.text" in js


def test_index_cards_have_human_names_and_label_the_papers_figures(tmp_path, layer12):
    """The index's summary cards read as words, not JSON keys (the key is the tooltip), and the
    paper's figures sit beside the run's, labelled as the paper's."""
    site = _build(tmp_path, layer=12)
    cards = json.loads((site / "data/site.json").read_text())["layers"][0]["cards"]
    by_name = {c["name"]: c for c in cards}
    assert len(by_name) == len(cards)  # each figure once
    for name in ("Latents", "Audio-modal latents", "Text-modal latents", "Mixed-modality latents",
                 "Dead latents (never fire on the store)", "Held-out positions",
                 "Detection AUROC, text-modal latents (mean)",
                 "Detection AUROC, all scored latents (mean)",
                 "Planted concepts recovered (best latent)",
                 "Planted concepts recovered (per group)",
                 "Planted concepts recovered by a random latent (control)",
                 "Dead latents (share)"):
        assert name in by_name, name
    assert by_name["Detection AUROC, text-modal latents (mean)"]["note"] == "paper, CosyVoice3: 0.921"
    assert by_name["Detection AUROC, audio-modal latents (mean)"]["note"] == "paper, CosyVoice3: 0.653"
    assert by_name["Detection AUROC, mixed-modality latents (mean)"]["note"] == \
        "paper, CosyVoice3: 0.558"
    assert "note" not in by_name["Detection AUROC, all scored latents (mean)"]  # no paper figure
    group = by_name["Planted concepts recovered (per group)"]
    assert group["value"] == 0.875 and group["key"] == "summary.json: planted_recall.group_recall"
    assert group["note"] == "up to 5 latents together"
    for c in cards:  # no raw JSON key as a name; run settings and timings are not figures
        assert "." not in c["name"] and "_" not in c["name"], c
        assert not c["name"].lower().startswith(("settings", "timings", "paper")), c
    app = (site / "static/app.js").read_text()
    assert "c.name" in app and "c.note" in app and "entry.summary" not in app

    (layer12 / "summary.json").write_text("{oops")  # no summary: the counts alone
    names = [c["name"] for c in json.loads(
        (_build(tmp_path, layer=12) / "data/site.json").read_text())["layers"][0]["cards"]]
    assert names == ["Latents", "Audio-modal latents", "Text-modal latents",
                     "Mixed-modality latents", "Dead latents (never fire on the store)"]


def test_rebuild_replaces_the_site_and_keeps_foreign_folders(tmp_path, layer12):
    site = _build(tmp_path, layer=12)
    (site / "stale.txt").write_text("old")
    assert _build(tmp_path, layer=12) == site and not (site / "stale.txt").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a dashboard site"):
        _build(tmp_path, layer=12, out=str(other))
    assert (other / "notes.txt").read_text() == "keep"
    assert not list(tmp_path.glob(".mine-build-*"))  # the staging folder is cleaned up


@pytest.mark.parametrize("damage, match", [
    ("missing", "no auto-interp output for layer 12"),
    ("bad_json", "latents.jsonl line 2 is malformed"),
    ("bad_modality", "modality 'speechy' is not one of"),
    ("no_evidence", "latent_00000.json is missing"),
    ("bad_evidence", "latent_00000.json is malformed"),
    ("clip_escape", "clip path '../../secret.wav' points outside"),
])
def test_broken_input_says_what_to_run(tmp_path, layer12, damage, match):
    jsonl = layer12 / "latents.jsonl"
    lines = jsonl.read_text().splitlines()
    evidence = layer12 / "evidence/latent_00000.json"
    if damage == "missing":
        jsonl.unlink()
    elif damage == "bad_json":
        jsonl.write_text("\n".join([lines[0], "{not json", *lines[2:]]))
    elif damage == "bad_modality":
        jsonl.write_text(lines[0].replace('"audio"', '"speechy"'))
    elif damage == "no_evidence":
        evidence.unlink()
    elif damage == "bad_evidence":
        evidence.write_text("[1, 2")
    else:
        ev = json.loads(evidence.read_text())
        ev["top"][0]["clip"]["wav"] = "../../secret.wav"
        evidence.write_text(json.dumps(ev))
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        _build(tmp_path, layer=12)
    assert "python -m autointerp.run --layer 12" in str(info.value)
    assert not (tmp_path / "dashboard").exists()


def test_cli_builds_and_fails_in_one_line(tmp_path, layer12):
    cmd = [sys.executable, "-m", "autointerp.dashboard", "build", "--layers", "12",
           "--autointerp", str(tmp_path / "autointerp"), "--out", str(tmp_path / "site")]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "layer 12: 16 latents" in ok.stdout and (tmp_path / "site/index.html").is_file()
    bad = subprocess.run(cmd[:5] + ["13"] + cmd[6:], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: no auto-interp output for layer 13 in {tmp_path / 'autointerp'}: "
        "run `python -m autointerp.run --layer 13`"]


def test_cli_parses_into_the_build_config(tmp_path, layer12, capsys):
    """The CLI's flags become the same BuildConfig a notebook passes to `build_site`."""
    from autointerp.dashboard.__main__ import main

    main(["build", "--layers", "12", "--autointerp", str(tmp_path / "autointerp")])
    assert "layer 12: 16 latents" in capsys.readouterr().out
    assert (tmp_path / "dashboard" / "data" / "site.json").is_file()
