"""One call that listens to a clip with every instrument.

`measure(wav_or_path, sr=None, ref_text=None)` → {p_male, laughter, laughter_spans,
voiced_duration_s, duration_s, median_f0_hz, transcript, wer, cer, transcript_corrected,
wer_corrected, transcript_open, wer_open, ...} (the *_corrected fields: the grammar
lexicon-constrained transcript, when the recogniser ships a lexicon; the *_open fields: the
open-vocabulary decode over its word list, when it ships one). Weights load lazily, once
per folder; `model_dirs` points an instrument at another folder (e.g. a local HF checkpoint).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from interp.audio import SAMPLE_RATE
from interp.instruments.common import (
    InstrumentError,
    in_use,
    input_flags,
    instrument_dir,
    prepare_audio,
    read_audio,
)

logger = logging.getLogger(__name__)

INSTRUMENTS = ("gender", "laughter", "asr", "prosody")
# the phoneme recogniser that hears open English (docs/instruments.md); data/instruments/asr, the
# letter one every grammar figure is read with, hears only the corpus grammar well
OPEN_ASR = "asr_open"


# Loaded once per folder; the folder is resolved first, so a swap (`use_instruments`) made
# after a first reading takes effect.
def gender_model(folder: str | None = None):  # noqa: ANN201
    return _gender(str(instrument_dir("gender", folder)))


def laughter_model(folder: str | None = None):  # noqa: ANN201
    return _laughter(str(instrument_dir("laughter", folder)))


def asr_model(folder: str | None = None):  # noqa: ANN201
    return _asr(str(instrument_dir("asr", folder)))


def open_asr_model():  # noqa: ANN201
    """The recogniser for open English: an `asr` swapped in (`use_instruments`), else the
    shipped phoneme ears (data/instruments/asr_open), else the shipped grammar ears."""
    folder = instrument_dir(OPEN_ASR)
    if in_use("asr") is None and (folder / "config.json").exists():
        return _asr(str(folder))
    return asr_model()


@lru_cache(maxsize=4)
def _gender(folder: str):  # noqa: ANN202
    from interp.instruments.gender import GenderClassifier

    return GenderClassifier.load(folder)


@lru_cache(maxsize=4)
def _laughter(folder: str):  # noqa: ANN202
    from interp.instruments.laughter_classifier import load_laughter

    return load_laughter(folder)


@lru_cache(maxsize=4)
def _asr(folder: str):  # noqa: ANN202
    from interp.instruments.asr import load_recognizer

    return load_recognizer(folder)


def p_male(wav: np.ndarray, sr: int) -> float:
    """P(male) of a waveform with the shipped gender classifier."""
    return gender_model().p_male(wav, sr)


def laughter_probability(wav: np.ndarray, sr: int) -> float:
    """Utterance laughter probability with the shipped laughter detector."""
    return laughter_model().score(wav, sr)


def transcribe(wav: np.ndarray, sr: int) -> str:
    """Transcript with the shipped recogniser, lexicon-constrained (the judge compares
    transcripts, where spelling noise decoded to known words makes them steadier)."""
    return asr_model().transcribe(wav, sr, lexicon=True)


def _load(wav_or_path: np.ndarray | str | Path, sr: int | None) -> tuple[np.ndarray, int, dict]:
    if isinstance(wav_or_path, (str, Path)):
        audio, file_sr = read_audio(wav_or_path)
        if sr is not None and sr != file_sr:
            logger.warning("%s is %d Hz; sr=%d ignored", wav_or_path, file_sr, sr)
        return audio, file_sr, {"file": str(wav_or_path)}
    if sr is None:
        raise InstrumentError("a waveform needs its sample rate: measure(wav, sr=16000)")
    return np.asarray(wav_or_path), int(sr), {}


def withhold(out: dict, flags: list[str]) -> None:
    """Move the classifiers' figures of an out-of-domain clip to `unreliable`, leaving None."""
    kept = {k: out[k] for k in ("p_male", "laughter") if out.get(k) is not None}
    for k in kept:
        out[k] = None
    if kept:
        out["unreliable"] = kept
    out["notes"].append(f"{' and '.join(flags)}: p_male and laughter not reported "
                        "(out of the instruments' domain)")


def measure(wav_or_path: np.ndarray | str | Path, sr: int | None = None,
            ref_text: str | None = None, *, model_dirs: dict[str, str] | None = None,
            skip: tuple[str, ...] = ()) -> dict:
    """Every instrument's reading of one clip (a waveform with `sr`, or an audio file path).

    Audio at another rate is resampled to 16 kHz (noted under "notes"). `skip` leaves out
    instruments by name (gender, laughter, asr, prosody); WER/CER need `ref_text` and the ASR.
    `flags` lists what makes the clip out of domain (`common.input_flags`) and `reliable` is
    False when there is any: on silence or audio recorded below 16 kHz the classifiers' figures
    (p_male, laughter) are None (the raw ones kept under `unreliable`), and silence has an empty
    transcript.
    """
    unknown = set(skip) - set(INSTRUMENTS)
    if unknown:
        raise InstrumentError(f"unknown instrument(s) {sorted(unknown)}; choose from {INSTRUMENTS}")
    dirs = model_dirs or {}
    raw, raw_sr, out = _load(wav_or_path, sr)
    audio, notes = prepare_audio(raw, raw_sr, out.get("file", "audio"))
    flags = input_flags(audio, SAMPLE_RATE, raw_sr)
    out.update({"sample_rate": raw_sr, "notes": notes, "flags": flags, "reliable": not flags})
    if "prosody" not in skip:
        from interp.instruments.prosody import prosody

        out.update(prosody(audio))
    else:
        out["duration_s"] = round(len(audio) / SAMPLE_RATE, 3)
    if "gender" not in skip:
        if out.get("voiced_duration_s", 1.0) <= 0:
            out["p_male"] = None
            notes.append("no speech found: p_male not measured")
        else:
            out["p_male"] = round(gender_model(dirs.get("gender")).p_male(audio, SAMPLE_RATE), 4)
    if "laughter" not in skip:
        det = laughter_model(dirs.get("laughter"))
        frames = det.frame_probs(audio, SAMPLE_RATE)
        out["laughter"] = round(det.score_frames(frames), 4)
        out["laughter_spans"] = det.spans_of(frames)
    if {"silence", "low_sample_rate"} & set(flags):
        withhold(out, flags)
    if "asr" not in skip:
        from interp.instruments.text import cer, wer

        rec = asr_model(dirs.get("asr"))
        reads = rec.readings(audio, SAMPLE_RATE)
        out["transcript"] = reads["greedy"]
        if rec.lexicon is not None:
            out["transcript_corrected"] = reads["lexicon"]
        if "open" in reads:
            out["transcript_open"] = reads["open"]
        if ref_text is not None:
            out["ref_text"] = ref_text
            out["wer"] = round(wer(ref_text, out["transcript"]), 4)
            out["cer"] = round(cer(ref_text, out["transcript"]), 4)
            for key, name in (("transcript_corrected", "wer_corrected"),
                              ("transcript_open", "wer_open")):
                if key in out:
                    out[name] = round(wer(ref_text, out[key]), 4)
    return out
