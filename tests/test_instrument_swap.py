"""Swapping the listening instruments for local checkpoints: a Whisper recogniser, another audio
classifier architecture for gender, everywhere readings are taken (`--instruments`), and the
acoustic judge deciding gender by the classifier. Tiny random-weight replicas with the real
classes and file layouts stand in for real checkpoints (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interp.instruments import common
from interp.instruments.common import InstrumentError, instrument_dir, use_instruments

_PROCESS_SWAPS = common._IN_USE  # the process-wide swaps, before any test replaces them


@pytest.fixture(autouse=True)
def no_swaps(monkeypatch):
    monkeypatch.setattr(common, "_IN_USE", {})


def _bytes_to_unicode() -> dict[int, str]:
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tiny_whisper(folder: Path) -> Path:
    """A 1-layer random Whisper with a byte-level tokenizer and the real special tokens."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    eot = "<|endoftext|>"
    tok = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=eot,
                           bos_token=eot, eos_token=eot, pad_token=eot)
    tok.add_special_tokens({"additional_special_tokens": [
        eot, "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
        "<|notimestamps|>"]})
    cfg = WhisperConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500,
                        max_target_positions=64, pad_token_id=tok.pad_token_id,
                        decoder_start_token_id=tok.convert_tokens_to_ids("<|startoftranscript|>"),
                        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    WhisperForConditionalGeneration(cfg).save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(folder)
    return folder


def tiny_hubert_gender(folder: Path) -> Path:
    """A random HuBERT audio classifier whose labels are female / male."""
    from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

    cfg = HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4),
                       conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                       num_conv_pos_embedding_groups=2, num_labels=2,
                       id2label={0: "Female", 1: "Male"}, label2id={"Female": 0, "Male": 1})
    HubertForSequenceClassification(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return folder


def _speechlike(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_parse_and_use_instruments(tmp_path):
    assert instrument_dir("asr").name == "asr"
    with pytest.raises(InstrumentError, match="NAME=DIR"):
        use_instruments("whisper=/x")
    with pytest.raises(InstrumentError, match="does not exist"):
        use_instruments(f"asr={tmp_path / 'none'}")
    assert use_instruments("") == {}
    use_instruments(f"asr={tmp_path}")
    assert instrument_dir("asr") == tmp_path and instrument_dir("asr", "other") == Path("other")
    assert instrument_dir("gender").name == "gender"  # the others stay the shipped ones


def test_whisper_reads_where_the_ctc_recogniser_did(tmp_path):
    from interp.instruments.asr import load_recognizer
    from interp.instruments.meter import asr_model, measure
    from interp.instruments.whisper_asr import WhisperRecognizer

    folder = tiny_whisper(tmp_path / "whisper")
    rec = load_recognizer(folder)
    assert isinstance(rec, WhisperRecognizer) and rec.lexicon is None
    r = rec.readings(_speechlike(), 16000)
    assert set(r) == {"greedy", "lexicon"} and r["greedy"] == r["lexicon"]
    assert rec.readings(np.zeros(16000, np.float32), 16000)["greedy"] == ""  # silence
    with pytest.raises(InstrumentError, match="--timings whole"):
        rec.align(_speechlike(), ["a"])
    use_instruments({"asr": folder})  # every reading that names no folder now uses it
    assert isinstance(asr_model(), WhisperRecognizer)
    m = measure(_speechlike(), 16000, ref_text="a test", skip=("gender", "laughter"))
    assert "transcript_corrected" not in m and m["wer"] >= 0 and "transcript" in m


def test_another_gender_architecture_with_its_extractor(tmp_path):
    from interp.instruments.gender import GenderClassifier
    from interp.instruments.meter import p_male

    folder = tiny_hubert_gender(tmp_path / "hubert")
    clf = GenderClassifier.load(folder)
    assert clf.extractor is not None and clf.male_index == 1
    p = clf.p_male(_speechlike(), 16000)
    assert 0 <= p <= 1
    use_instruments({"gender": folder})
    assert p_male(_speechlike(), 16000) == pytest.approx(p)


def test_acoustic_judge_decides_gender_by_the_classifier(tmp_path, monkeypatch):
    import soundfile as sf

    from interp.judge import acoustic_backend as ab
    from interp.judge.audio import AudioPart

    wav = tmp_path / "a.wav"
    sf.write(wav, _speechlike(1.5), 16000)
    part = AudioPart(label="<audio output>", path=str(wav))
    t = ab.Targets(part, part, part)
    by_f0 = ab.measure_gender(ab.Measurer(ab.AcousticConfig()), None, t)
    assert by_f0.label == "male" and "median F0" in by_f0.reason  # 140 Hz: under the split
    monkeypatch.setitem(ab._INSTRUMENTS, "gender", lambda x, sr: 0.2)
    by_clf = ab.measure_gender(ab.Measurer(ab.AcousticConfig(gender_by="classifier")), None, t)
    assert by_clf.label == "female" and by_clf.detail["p_male"] == 0.2
    with pytest.raises(ValueError, match="gender_by"):
        ab.AcousticConfig(gender_by="pitch")


def tiny_hubert_laughter(folder: Path, multi_label: bool = True) -> Path:
    """A random HuBERT audio classifier with AudioSet-like labels, one of them Laughter."""
    from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

    labels = {0: "Speech", 1: "Laughter", 2: "Music"}
    cfg = HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4),
                       conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                       num_conv_pos_embedding_groups=2, num_labels=3, id2label=labels,
                       label2id={v: k for k, v in labels.items()},
                       problem_type="multi_label_classification" if multi_label else None)
    HubertForSequenceClassification(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return folder


def test_an_audio_classifier_as_the_laughter_instrument(tmp_path, monkeypatch):
    from interp.instruments import laughter_classifier as lc
    from interp.instruments.laughter import LaughterDetector
    from interp.instruments.meter import laughter_model, measure

    folder = tiny_hubert_laughter(tmp_path / "ast")
    det = lc.load_laughter(folder)
    assert isinstance(det, lc.LaughterClassifier) and det.index == 1 and det.multi_label
    assert isinstance(lc.load_laughter(instrument_dir("laughter")), LaughterDetector)  # shipped
    audio = _speechlike(2.3)
    p = det.frame_probs(audio, 16000)
    assert p.shape == (-(-len(audio) // 640),) and ((p > 0) & (p < 1)).all()

    # Each frame takes the most of the 1 s windows covering it: a window that says laughter
    # only where the clip is loud marks exactly those frames.
    loud = _speechlike(3.5)
    loud[16000:24000] *= 3
    # (a context of its own: monkeypatch.undo() would also undo no_swaps, and the swap below
    # would then outlive this test)
    with monkeypatch.context() as m:
        m.setattr(lc.LaughterClassifier, "_window_probs", lambda self, ws: np.array(
            [float(np.abs(w).max() > 1.0) for w in ws]))
        frames = det.frame_probs(loud, 16000)
        on = np.flatnonzero(frames > 0.5)
        assert on[0] >= 16000 // 640 - 25 and on[-1] <= 24000 // 640 + 25
        assert frames[:2].max() == 0 and frames[-2:].max() == 0
        assert det.spans(loud, 16000) and det.score(loud, 16000) == 1.0

    use_instruments({"laughter": folder})
    assert isinstance(laughter_model(), lc.LaughterClassifier)
    m = measure(audio, 16000, skip=("gender", "asr"))
    assert 0 <= m["laughter"] <= 1
    with pytest.raises(InstrumentError, match="exactly one must contain 'laugh'"):
        lc.LaughterClassifier.load(tiny_hubert_gender(tmp_path / "g"))


def test_a_speaker_model_fingerprints_voices(tmp_path):
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForXVector,
        Wav2Vec2Model,
    )

    from interp.audio.voice import voice_embedding
    from interp.instruments.speaker import speaker_embedding, speaker_instrument

    audio = _speechlike(1.0)
    assert speaker_instrument() == "mfcc" and speaker_embedding(audio) == voice_embedding(audio)
    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4),
                         conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=2, tdnn_dim=(8, 8), tdnn_kernel=(3, 1),
                         tdnn_dilation=(1, 1), xvector_output_dim=12)
    for name, cls, dim in (("xvector", Wav2Vec2ForXVector, 12), ("encoder", Wav2Vec2Model, 16)):
        folder = tmp_path / name
        cls(cfg).save_pretrained(folder)
        Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
        use_instruments({"speaker": folder})
        emb = speaker_embedding(audio)
        assert speaker_instrument() == str(folder) and len(emb) == dim
        assert speaker_embedding(audio[:1000]) is None  # too short, as the MFCC fingerprint
    with pytest.raises(InstrumentError, match="cannot load a speaker model"):
        use_instruments({"speaker": tmp_path})
        speaker_embedding(audio)


def test_no_swap_outlives_its_test():
    # the tests above swap instruments; none may leak into the rest of the session (runs last)
    assert _PROCESS_SWAPS == {}
