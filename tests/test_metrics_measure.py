"""`measure()` and `python -m interp.instruments`: every reading of a clip, files, errors, and the
contract the acoustic judge relies on (`JUDGE_INSTRUMENTS`)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import interp.instruments as metrics
from interp.corpus.table import load_audio, load_table
from interp.instruments import asr, gender, laughter
from interp.instruments import meter as mm
from interp.instruments.__main__ import main
from interp.instruments.common import InstrumentError
from interp.instruments.data import ClipPool


@pytest.fixture(scope="module")
def tiny_dirs(tiny_corpus, tmp_path_factory) -> dict[str, str]:
    """All three instruments, trained for two steps each at toy size."""
    pool = ClipPool(tiny_corpus, load_table(tiny_corpus, "train"), {}, 0.0)
    root = tmp_path_factory.mktemp("instruments")
    g = gender.GenderConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64,
                            conv_channels=8, steps=2, batch_size=2, crop_s=0.5, warmup=1)
    clf = gender.new_classifier(g)
    gender.train(clf, pool, g)
    clf.save(root / "gender")
    c = laughter.LaughterConfig(n_mels=32, channels=4, rnn=8, steps=2, batch_size=2, crop_s=1.0)
    det = laughter.new_detector(c)
    laughter.train(det, pool, c)
    det.save(root / "laughter")
    a = asr.AsrConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64,
                      conv_channels=(8, 8), steps=2, batch_seconds=4.0)
    rec = asr.new_recognizer(a, root / "asr")
    asr.train(rec, pool, a)
    rec.save(root / "asr")
    return {k: str(root / k) for k in ("gender", "laughter", "asr")}


@pytest.fixture(scope="module")
def wav_dir(tiny_corpus, tmp_path_factory):
    """Two held-out clips (one at 22.05 kHz), a corrupt file and an empty one."""
    d = tmp_path_factory.mktemp("wavs")
    rows = load_table(tiny_corpus, "heldout_voices")[:2]
    a0, sr = load_audio(tiny_corpus, rows[0])
    sf.write(d / "a.wav", a0, sr)
    import librosa

    sf.write(d / "b.wav", librosa.resample(load_audio(tiny_corpus, rows[1])[0], orig_sr=sr,
                                           target_sr=22050), 22050)
    bad = d / "bad"
    bad.mkdir()
    (bad / "corrupt.wav").write_bytes(b"RIFF1234WAVEjunkjunk")
    sf.write(bad / "empty.wav", np.zeros(0, np.float32), 16000)
    return d, rows


def test_measure_reads_everything(tiny_dirs, wav_dir):
    d, rows = wav_dir
    r = mm.measure(d / "a.wav", ref_text=rows[0]["text_plain"], model_dirs=tiny_dirs)
    assert 0 <= r["p_male"] <= 1 and 0 <= r["laughter"] <= 1
    assert isinstance(r["transcript"], str) and r["wer"] >= 0 and r["cer"] >= 0
    assert r["duration_s"] == pytest.approx(rows[0]["duration"], abs=0.01)
    assert 0 < r["voiced_duration_s"] <= r["duration_s"] + 0.1
    assert r["voiced_duration_method"] in ("silero-vad", "praat-voicing")
    assert r["median_f0_hz"] == pytest.approx(rows[0]["f0_median"], rel=0.1)
    audio, _ = sf.read(d / "a.wav", dtype="float32")
    same = mm.measure(audio, sr=16000, model_dirs=tiny_dirs, skip=("prosody", "asr"))
    assert same["p_male"] == r["p_male"] and "transcript" not in same


def test_measure_notes_resampling_and_rejects_bad_input(tiny_dirs, wav_dir):
    d, _ = wav_dir
    r = mm.measure(d / "b.wav", model_dirs=tiny_dirs, skip=("asr",))
    assert r["sample_rate"] == 22050 and any("resampled" in n for n in r["notes"])
    with pytest.raises(InstrumentError, match="cannot read"):
        mm.measure(d / "bad" / "corrupt.wav", model_dirs=tiny_dirs)
    with pytest.raises(InstrumentError, match="empty"):
        mm.measure(d / "bad" / "empty.wav", model_dirs=tiny_dirs)
    with pytest.raises(InstrumentError, match="sample rate"):
        mm.measure(np.zeros(16000, np.float32), model_dirs=tiny_dirs)
    with pytest.raises(FileNotFoundError, match="no laughter weights"):
        mm.measure(d / "a.wav", model_dirs={**tiny_dirs, "laughter": str(d)})


def test_cli_folder_to_jsonl_and_csv(tiny_dirs, wav_dir, tmp_path, capsys):
    d, _ = wav_dir
    flags = [f"--{k}-dir={v}" for k, v in tiny_dirs.items()]
    with pytest.raises(SystemExit) as exit_:  # two of the four files are bad: partial, exit 3
        main([str(d), "--ref-text", "hello there", "--out", str(tmp_path / "r.jsonl"), *flags])
    assert exit_.value.code == 3
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and sum("error" in r for r in rows) == 2
    ok = [r for r in rows if "error" not in r]
    assert all({"p_male", "laughter", "voiced_duration_s", "median_f0_hz", "wer"} <= set(r)
               for r in ok)
    main([str(d / "a.wav"), "--skip", "asr", "--out", str(tmp_path / "r.csv"), *flags])
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("file,")
    assert "p_male" in capsys.readouterr().out


def test_cli_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF1234WAVEjunkjunk")
    p = subprocess.run([sys.executable, "-m", "interp.instruments", str(bad)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error:") and len(p.stderr.strip().splitlines()) == 1


def test_judge_contract(tiny_dirs, wav_dir, monkeypatch):
    assert {"laughter", "asr"} <= set(metrics.JUDGE_INSTRUMENTS)
    monkeypatch.setattr(mm, "laughter_model", lambda folder=None: laughter.LaughterDetector.load(
        tiny_dirs["laughter"]))
    monkeypatch.setattr(mm, "asr_model", lambda folder=None: asr.Recognizer.load(tiny_dirs["asr"]))
    audio, sr = sf.read(wav_dir[0] / "a.wav", dtype="float32")
    p = metrics.JUDGE_INSTRUMENTS["laughter"](audio, sr)
    assert isinstance(p, float) and 0 <= p <= 1
    assert isinstance(metrics.JUDGE_INSTRUMENTS["asr"](audio, sr), str)


def test_import_loads_no_weights():
    code = ("import interp.instruments as m\n"
            "from interp.instruments import meter as mm\n"
            "assert {'laughter', 'asr'} <= set(m.JUDGE_INSTRUMENTS)\n"
            "loaded = [f.cache_info().currsize for f in (mm._gender, mm._laughter, "
            "mm._asr)]\n"
            "assert loaded == [0, 0, 0], loaded\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_out_of_domain_input_is_flagged_not_scored(tiny_dirs, wav_dir):
    """The issue's failure 6: 2 s of silence transcribed as words; an 8 kHz clip's laughter
    score rising from 0.0002 to 0.14 with only a 'resampled' note."""
    import librosa

    d, _ = wav_dir
    rng = np.random.default_rng(0)
    silence = (rng.standard_normal(32000) * 1e-4).astype(np.float32)  # -80 dBFS hiss
    r = mm.measure(silence, sr=16000, ref_text="hello there", model_dirs=tiny_dirs)
    assert r["flags"] == ["silence"] and r["reliable"] is False
    assert r["p_male"] is None and r["laughter"] is None and r["transcript"] == ""
    assert r["wer"] == 1.0
    audio, sr = sf.read(d / "a.wav", dtype="float32")
    narrow = librosa.resample(audio, orig_sr=sr, target_sr=8000)
    r8 = mm.measure(narrow, sr=8000, model_dirs=tiny_dirs, skip=("asr",))
    assert "low_sample_rate" in r8["flags"] and r8["laughter"] is None and r8["p_male"] is None
    assert 0 <= r8["unreliable"]["laughter"] <= 1
    loud = np.clip(audio * 50, -1, 1)
    rc = mm.measure(loud, sr=sr, model_dirs=tiny_dirs, skip=("asr",))
    assert "clipping" in rc["flags"] and rc["laughter"] is not None  # flagged, still measured
    clean = mm.measure(audio, sr=sr, model_dirs=tiny_dirs, skip=("asr",))
    assert clean["flags"] == [] and clean["reliable"]


def test_recognizer_does_not_transcribe_silence(tiny_dirs):
    rec = asr.Recognizer.load(tiny_dirs["asr"])
    assert rec.transcribe(np.zeros(32000, np.float32), 16000) == ""


def test_measure_adds_the_open_reading_when_the_recogniser_has_a_word_list(tiny_dirs, wav_dir,
                                                                           tmp_path):
    import shutil

    from interp.instruments.ctc_open import WORDLIST, WordList

    d, rows = wav_dir
    shutil.copytree(tiny_dirs["asr"], tmp_path / "asr")
    WordList.from_counts({"the": 3, "cat": 1}).save(tmp_path / "asr" / WORDLIST)
    only_asr = ("gender", "laughter", "prosody")
    r = mm.measure(d / "a.wav", ref_text=rows[0]["text_plain"], skip=only_asr,
                   model_dirs={**tiny_dirs, "asr": str(tmp_path / "asr")})
    assert isinstance(r["transcript_open"], str) and r["wer_open"] >= 0
    plain = mm.measure(d / "a.wav", ref_text=rows[0]["text_plain"], skip=only_asr,
                       model_dirs=tiny_dirs)
    assert "transcript_open" not in plain and "wer_open" not in plain
    assert plain["transcript"] == r["transcript"] and plain["wer"] == r["wer"]
