"""`python -m interp.corpus import`: a user's recordings as a corpus folder (splits, resampling,
label columns, word timings, bad rows, resume, the folder layout)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from interp.audio.tokenize_corpus import load_tokens, tokenize_corpus
from interp.cli import StageInterrupted
from interp.concepts import row_label_columns
from interp.corpus import importer
from interp.corpus.espeak import engine
from interp.corpus.importer import REPORT, ImportConfig, run_import
from interp.corpus.render import align_words
from interp.corpus.table import SCHEMA, TABLE, label_columns, load_audio, load_table, write_table
from interp.instruments.ctc_align import forced_align, word_spans
from interp.models.data import cut_prompt
from interp.paths import CODEC_DIR

SENTENCES = ("the cat sat on the mat", "please bring my yellow umbrella",
             "she remembered the missing boxes", "open the window before noon",
             "we walked home along the river", "my brother likes green apples")
VOICES = ("en-us+m3", "en-gb+f2", "en-us+f4", "en-gb-scotland+m1")
STYLES = ("calm", "happy", "sad")
READS = ((0, 1, 2), (2, 3, 4), (4, 5, 0), (1, 3, 5))  # whichever speaker is held out, every
# other one keeps a sentence it does not read


def speak(text: str, voice: str, rate: int = 170) -> tuple[np.ndarray, int, list[dict]]:
    """espeak audio (its own rate), and its word timings (espeak's events)."""
    r = engine().render(text, voice, rate, 50)
    loud = np.flatnonzero(np.abs(r.audio) > 0.01)
    audio = r.audio[: loud[-1] + 1]
    return audio, r.sample_rate, align_words(text, r.words, len(audio) / r.sample_rate)


def write_csv(path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """12 recordings: 4 speakers reading 3 of 6 sentences each (each sentence read by two), at
    22.05 and 16 kHz, one of them stereo at 44.1 kHz; a CSV manifest with a `style` label, instructions
    on some rows and a tag span on one. Returns (manifest, espeak word timings by wav name)."""
    root = tmp_path_factory.mktemp("recordings")
    (root / "audio").mkdir()
    rows, truth = [], {}
    for k, voice in enumerate(VOICES):
        for j in range(3):
            text = SENTENCES[READS[k][j]]
            audio, sr, words = speak(text, voice)
            name = f"audio/{voice.replace('+', '_')}_{j}.wav"
            if (k, j) == (1, 1):  # stereo at 44.1 kHz
                from scipy.signal import resample_poly

                up = resample_poly(audio, 2, 1).astype(np.float32)
                sf.write(root / name, np.stack([up, 0.5 * up], 1), 44100)
            else:
                sf.write(root / name, audio, sr)
            truth[name] = words
            rows.append({"wav": name, "transcript": text.capitalize() + ".",
                         "speaker": f"spk{k}", "style": STYLES[(k + j) % 3],
                         "instruction": "Speak calmly." if j == 0 else "",
                         "tags": '[{"tag": "laughter", "start": 0.1, "end": 0.3}]'
                         if (k, j) == (0, 2) else ""})
    write_csv(root / "manifest.csv", rows)
    return root / "manifest.csv", truth


@pytest.fixture(scope="module")
def imported(recordings, tmp_path_factory):
    manifest, _ = recordings
    out = tmp_path_factory.mktemp("imported")
    m = run_import(ImportConfig(source=manifest, out=out, heldout_voice_frac=0.25,
                                heldout_sentence_frac=0.2, workers=1))
    return out, m


def test_import_manifest_splits_labels_and_audio(recordings, imported):
    manifest_path, _ = recordings
    out, manifest = imported
    rows = load_table(out)
    assert len(rows) == 12 and manifest["summary"]["skipped"] == {}
    # The fixed columns come first and unchanged; the label and source columns follow.
    schema = pq.read_schema(out / TABLE)
    assert schema.names[: len(SCHEMA)] == SCHEMA.names
    # `source` (the recording's path) is kept but is no label: autointerp and probes skip it.
    assert label_columns(out) == ["style"] and manifest["label_columns"] == ["style"]
    assert "source" in schema.names and row_label_columns(load_table(out)) == ["style"]
    with manifest_path.open() as f:
        styles = {r["wav"]: r["style"] for r in csv.DictReader(f)}
    for r in rows:
        assert r["style"] == styles[r["source"]]
        assert r["voice_id"].startswith("spk") and r["domain"] == "open"
        audio, sr = load_audio(out, r)
        assert sr == 16000 and audio.ndim == 1 and abs(len(audio) / sr - r["duration"]) < 1e-3
        assert r["instruction"] == ("Speak calmly." if r["source"].endswith("_0.wav") else None)
        assert r["text_plain"] == r["text"] and r["text"].endswith(".")
    # The stereo 44.1 kHz recording is kept, mono at 16 kHz, as long as it was.
    stereo = next(r for r in rows if r["source"] == "audio/en-gb_f2_1.wav")
    info = sf.info(manifest_path.parent / stereo["source"])
    assert info.channels == 2 and info.samplerate == 44100
    assert abs(stereo["duration"] - info.duration) < 0.01
    tagged = next(r for r in rows if r["source"] == "audio/en-us_m3_2.wav")
    assert tagged["tags"] == [{"tag": "laughter", "start": 0.1, "end": 0.3}]
    # Splits as the synthetic corpus has them: held-out voices and sentences unseen in train.
    by = {s: [r for r in rows if r["split"] == s] for s in
          ("train", "heldout_sentences", "heldout_voices")}
    assert all(by.values()), {k: len(v) for k, v in by.items()}
    train_voices = {r["voice_id"] for r in by["train"]}
    train_sents = {r["sentence_id"] for r in by["train"]}
    assert len({r["voice_id"] for r in by["heldout_voices"]}) == 1
    assert not train_voices & {r["voice_id"] for r in by["heldout_voices"]}
    assert not train_sents & {r["sentence_id"] for r in by["heldout_voices"]}
    assert not train_sents & {r["sentence_id"] for r in by["heldout_sentences"]}
    assert {r["voice_id"] for r in by["heldout_sentences"]} <= train_voices
    ids = {r["utt_id"]: r for r in rows}
    for r in rows:  # prompts: another recording of the same speaker, same split when there is one
        prompt = ids[r["prompt_id"]]
        assert prompt["voice_id"] == r["voice_id"] and prompt is not r
    assert manifest["summary"]["split"] == {k: len(v) for k, v in by.items()}
    assert json.loads((out / REPORT).read_text())["skipped"] == []


def test_ctc_word_timings_are_monotone_and_near_the_truth(recordings, imported):
    manifest_path, truth = recordings
    out, manifest = imported
    assert manifest["summary"]["timings"] == {"ctc": 12}
    errors = []
    for r in load_table(out):
        words = r["words"]
        assert [w["word"] for w in words] == [w.strip(".") for w in r["text_plain"].split()]
        starts = [w["start"] for w in words]
        assert starts == sorted(starts)
        assert all(w["start"] <= w["end"] <= r["duration"] for w in words)
        assert all(a["end"] <= b["start"] + 1e-9 for a, b in zip(words, words[1:], strict=False))
        assert all(w["timed"] for w in words)
        ref = truth[r["source"]]
        errors += [abs(w["start"] - t["start"]) for w, t in zip(words, ref, strict=True)
                   if t["timed"]]
    assert np.mean(errors) < 0.1, np.mean(errors)  # espeak's own word starts, within 100 ms


def test_cut_prompt_reads_imported_rows_and_rows_without_timings(imported):
    out, _ = imported
    row = load_table(out)[0]
    tokens = np.arange(int(row["duration"] * 25) + 1)
    text, tok = cut_prompt(row, tokens, 1.0)
    assert text and text.split()[0] == row["words"][0]["word"] and 0 < len(tok) <= 26
    text, tok = cut_prompt({**row, "words": [], "tags": []}, tokens, 1.0)
    assert text == "" and len(tok) == 25


def test_bad_rows_are_skipped_and_reported_by_reason(tmp_path, monkeypatch, capsys):
    audio, sr, _ = speak("the cat sat on the mat", "en-us+m3")
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "good0.wav", audio, sr)
    sf.write(tmp_path / "good1.wav", audio, sr)
    from scipy.signal import resample_poly

    up = resample_poly(audio, 2, 1).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", np.stack([up, up], 1), 44100)
    (tmp_path / "zero_bytes.wav").write_bytes(b"")
    sf.write(tmp_path / "no_frames.wav", np.zeros(0, np.float32), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "long.wav", 0.1 * rng.standard_normal(30 * 8000).astype(np.float32), 8000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + rng.bytes(200))
    rows = [("good0.wav", "the cat sat on the mat", ""), ("missing.wav", "a b", ""),
            ("zero_bytes.wav", "a b", ""), ("no_frames.wav", "a b", ""),
            ("silent.wav", "a b", ""), ("stereo.wav", "the cat sat on the mat", ""),
            ("long.wav", "a b", ""), ("corrupt.wav", "a b", ""), ("good1.wav", "", ""),
            ("good1.wav", "the cat sat", "laughter:0.5-99")]
    write_csv(tmp_path / "m.csv", [{"path": p, "text": t, "speaker": f"s{i % 2}", "tags": g}
                                   for i, (p, t, g) in enumerate(rows)])
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["interp.corpus", "import", str(tmp_path / "m.csv"),
                                      "--out", str(out), "--timings", "whole", "--workers", "1",
                                      "--heldout-voice-frac", "0"])
    from interp.corpus.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 3  # finished, some rows skipped
    printed = capsys.readouterr().out
    report = json.loads((out / REPORT).read_text())
    by_row = {x["row"]: x for x in report["skipped"]}
    assert {k: x["reason"] for k, x in by_row.items()} == {
        1: "missing", 2: "empty", 3: "empty", 4: "silent", 6: "too_long", 7: "unreadable",
        8: "no_transcript", 9: "bad_tags"}
    assert "30.0 s" in by_row[6]["detail"]
    kept = load_table(out)
    assert sorted(r["source"] for r in kept) == ["good0.wav", "stereo.wav"]
    stereo = next(r for r in kept if r["source"] == "stereo.wav")
    assert abs(stereo["duration"] - len(audio) / sr) < 0.01
    assert load_audio(out, stereo)[1] == 16000
    # One summary at the end names every reason and every skipped row.
    for reason in ("missing", "empty", "silent", "too_long", "unreadable", "no_transcript",
                   "bad_tags"):
        assert f"{reason}=" in printed
    assert printed.count("    row ") == 8 and "2 of 10 rows kept" in printed
    # `--timings whole`: every word a share of the sound, in order, marked as not timed.
    words = kept[0]["words"]
    assert len(words) == 6 and not any(w["timed"] for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert words[-1]["end"] <= kept[0]["duration"]


def test_resume_reuses_finished_chunks(recordings, tmp_path, monkeypatch):
    manifest, _ = recordings
    monkeypatch.setattr(importer, "CHUNK", 5)
    cfg = ImportConfig(source=manifest, out=tmp_path, timings="whole", heldout_voice_frac=0.25,
                       heldout_sentence_frac=0.2, workers=1)
    real = importer.import_row
    calls = []

    def killed_at_seven(item, *args):
        if len(calls) == 7:  # the first chunk (5 rows) is finished, the second is half done
            raise KeyboardInterrupt
        calls.append(item["utt_id"])
        return real(item, *args)

    monkeypatch.setattr(importer, "import_row", killed_at_seven)
    with pytest.raises(KeyboardInterrupt):
        run_import(cfg)
    assert [p.name for p in (tmp_path / "chunks").glob("*.jsonl")] == ["u000000.jsonl"]
    assert not (tmp_path / TABLE).exists()
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "wav").glob("u00000[0-4].wav")}
    assert len(first) == 5

    calls.clear()
    monkeypatch.setattr(importer, "import_row", lambda item, *a: calls.append(item["utt_id"])
                        or real(item, *a))
    m = run_import(cfg)
    assert calls == [f"u{i:06d}" for i in range(5, 12)]  # only what the kill left undone
    assert m["summary"]["resumed_from"] == 5 and m["summary"]["utterances"] == 12
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "wav").glob("u00000[0-4].wav")} \
        == first
    # The same rows and splits as an import in one go.
    fresh = run_import(ImportConfig(**{**cfg.__dict__, "out": tmp_path / "fresh"}))
    assert fresh["summary"]["split"] == m["summary"]["split"]
    # Other split flags re-split the finished import without redoing a row ...
    calls.clear()
    again = run_import(ImportConfig(**{**cfg.__dict__, "heldout_voice_frac": 0.0}))
    assert calls == [] and again["summary"]["resumed_from"] == 12
    assert again["summary"]["split"]["heldout_voices"] == 0
    # ... but a folder imported with another config is not mixed into.
    with pytest.raises(ValueError, match="another config"):
        run_import(ImportConfig(**{**cfg.__dict__, "max_seconds": 5.0}))


def test_folder_layout(tmp_path):
    src = tmp_path / "recs"
    for k, (voice, spk) in enumerate((("en-us+m3", "alice"), ("en-gb+f2", "bob"))):
        (src / spk).mkdir(parents=True)
        for j in range(2):
            text = SENTENCES[k + j]
            audio, sr, _ = speak(text, voice)
            sf.write(src / spk / f"utt{j}.flac", audio, sr)
            (src / spk / f"utt{j}{'.txt' if j == 0 else '.lab'}").write_text(text + "\n")
    sf.write(src / "bob" / "orphan.wav", speak("no text here", "en-gb+f2")[0], 22050)
    out = tmp_path / "corpus"
    m = run_import(ImportConfig(source=src, out=out, timings="whole", workers=1,
                                heldout_voice_frac=0.5, heldout_voice_sentences=False))
    rows = load_table(out)
    assert sorted({r["voice_id"] for r in rows}) == ["alice", "bob"] and len(rows) == 4
    assert {r["text_plain"] for r in rows} == set(SENTENCES[:3])
    assert m["summary"]["skipped"] == {"no_transcript": 1}
    assert {r["split"] for r in rows} >= {"train", "heldout_voices"}
    assert all(r["source"].startswith(("alice/", "bob/")) for r in rows)


def test_jsonl_labels_keep_their_kind(tmp_path):
    audio, sr, _ = speak("open the window before noon", "en-us+f4")
    sf.write(tmp_path / "a.wav", audio, sr)
    lines = [{"audio": "a.wav", "text": "Open the window [laughter] before noon!",
              "speaker": "x", "emotion": "joy", "age": 31, "duration": "long", "gender": "female",
              "zip": "02134", "score": 0.5},
             {"audio": str(tmp_path / "a.wav"), "text": "open the window before noon",
              "speaker": "y", "emotion": "anger", "age": None, "zip": "10001", "score": 2}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines)
                                      + "\n{not json\n")
    out = tmp_path / "out"
    cfg = ImportConfig(source=tmp_path / "m.jsonl", out=out, timings="whole", workers=1)
    with pytest.raises(ValueError, match="no train utterances"):  # x and y read the same text
        run_import(cfg)
    m = run_import(ImportConfig(**{**cfg.__dict__, "heldout_voice_sentences": False}))
    rows = load_table(out)
    assert [r["emotion"] for r in rows] == ["joy", "anger"]
    assert [r["age"] for r in rows] == [31, None] and [r["score"] for r in rows] == [0.5, 2.0]
    assert [r["zip"] for r in rows] == ["02134", "10001"]  # a code keeps its leading zero
    # A column named like one the import computes is kept under another name; `gender` fills
    # the fixed column.
    assert rows[0]["user_duration"] == "long" and m["renamed_columns"] == {
        "duration": "user_duration"}
    assert [r["gender"] for r in rows] == ["female", None]
    assert rows[0]["text_plain"] == "Open the window before noon!"
    assert rows[0]["words"][-1]["word"] == "noon"
    assert m["summary"]["skipped"] == {"bad_row": 1}
    # The same rows as a .json list read the same.
    (tmp_path / "m.json").write_text(json.dumps(lines))
    run_import(ImportConfig(**{**cfg.__dict__, "source": tmp_path / "m.json",
                               "out": tmp_path / "out2", "heldout_voice_sentences": False}))
    assert [{k: v for k, v in r.items() if k != "source"} for r in load_table(tmp_path / "out2")] \
        == [{k: v for k, v in r.items() if k != "source"} for r in rows]


def test_table_round_trip_keeps_label_columns(tmp_path):
    base = {n: None for n in SCHEMA.names} | {"utt_id": "u0", "split": "train", "tags": [],
                                               "words": []}
    write_table([base], tmp_path / TABLE)
    assert pq.read_schema(tmp_path / TABLE).equals(SCHEMA)  # no labels: the fixed table
    write_table([base | {"style": "calm", "snr": 3.5}, base | {"style": None}], tmp_path / TABLE)
    assert label_columns(tmp_path) == ["style", "snr"]
    assert [(r["style"], r["snr"]) for r in load_table(tmp_path)] == [("calm", 3.5), (None, None)]
    with pytest.raises(ValueError, match="style"):
        write_table([base | {"style": "calm"}, base | {"style": 3}], tmp_path / TABLE)


def test_forced_align_finds_the_planted_path():
    # 10 frames, labels 1 2 2 (the repeat needs a blank between): a path planted in the log-probs.
    planted = [0, 1, 1, 0, 2, 0, 2, 2, 0, 0]
    lp = np.full((10, 4), -8.0)
    lp[np.arange(10), planted] = -0.01
    path = forced_align(lp, [1, 2, 2])
    assert path.tolist() == [-1, 0, 0, -1, 1, -1, 2, 2, -1, -1]
    assert word_spans(path, [0, 1, 1], 2) == [(1, 3), (4, 8)]
    assert word_spans(path, [0, -1, 1], 3) == [(1, 3), (6, 8), None]
    assert forced_align(lp[:2], [1, 2, 2]) is None  # too few frames for the labels


def test_sigterm_stops_after_the_chunk_under_way(recordings, tmp_path, monkeypatch):
    manifest, _ = recordings
    monkeypatch.setattr(importer, "CHUNK", 5)
    real = importer.import_row

    def terminated_once(item, *args):
        if item["utt_id"] == "u000001":
            os.kill(os.getpid(), signal.SIGTERM)
        return real(item, *args)

    monkeypatch.setattr(importer, "import_row", terminated_once)
    cfg = ImportConfig(source=manifest, out=tmp_path, timings="whole", workers=1)
    with pytest.raises(StageInterrupted, match="5 of 12 rows imported"):
        run_import(cfg)
    assert len(list((tmp_path / "chunks").glob("*.jsonl"))) == 1
    monkeypatch.setattr(importer, "import_row", real)
    assert run_import(cfg)["summary"]["resumed_from"] == 5


def test_downstream_stages_read_the_import(imported, tmp_path):
    """`interp.audio tokenize` (the shipped codec) reads the imported corpus, and a prompt cut
    from its tokens has the words before the cut."""
    out, _ = imported
    tokenize_corpus(out, CODEC_DIR, tmp_path / "tokens", workers=1)
    tokens = load_tokens(tmp_path / "tokens")
    rows = load_table(out)
    assert set(tokens) == {r["utt_id"] for r in rows}
    for r in rows:
        assert abs(len(tokens[r["utt_id"]]) / 25 - r["duration"]) < 0.1
    text, tok = cut_prompt(rows[0], tokens[rows[0]["utt_id"]], 1.0)
    assert text and len(tok) <= 25


def test_label_column_defines_a_concept(imported):
    """The manifest's `style` column defines concepts of your own (interp.concepts): groups,
    the one-line errors, and the success classifier steering fits on them."""
    from interp.concepts import CorpusGroups, define
    from interp.instruments.concept import fit_classifier

    out, _ = imported
    rows = load_table(out)
    calm = define("calm", ["style=calm", "style=happy"])
    assert CorpusGroups(calm, rows, str(out)).counts() == {"style=calm": 4, "style=happy": 4}
    rest = CorpusGroups(define("calm", ["style=calm"]), rows, str(out))
    assert rest.counts() == {"style=calm": 4, "not style=calm": 8}
    with pytest.raises(ValueError, match=r"unknown column 'mood'.*style") as exc:
        CorpusGroups(define("x", ["mood=calm"]), rows, str(out))
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"holds no utterance.*style values: ") as exc:
        CorpusGroups(define("x", ["style=angry"]), rows, str(out))
    clf = fit_classifier(out, calm, max_per_group=8)
    n = clf.report["utterances"]
    assert n["train_positive"] and n["train_negative"]
    assert n["train_positive"] + n["heldout_positive"] == 4
