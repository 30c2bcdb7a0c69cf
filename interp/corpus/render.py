"""Render one planned utterance to 16 kHz audio and its ground-truth record."""

from __future__ import annotations

import re
import zlib

import numpy as np
from scipy.signal import resample_poly

from interp.audio.pitch import median_f0
from interp.corpus.espeak import engine
from interp.corpus.nonverbal import breath, laughter
from interp.corpus.plan import UtteranceSpec

_TAG = re.compile(r"\[(laughter|breath)\]")
_SILENCE = 0.01  # amplitude below which espeak's padding counts as silence
_GAP_S = 0.08  # pause around a non-verbal event


def _trim_end(audio: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > _SILENCE)
    return audio[: loud[-1] + 1] if len(loud) else audio[:0]


def _resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return audio
    g = np.gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)


def align_words(text: str, events: list[tuple[int, float]], dur: float) -> list[dict]:
    """Start/end seconds for every word of `text` from espeak's word events.

    A word espeak gave no event of its own (it merges some function words) shares the time of the
    event before it, split evenly; `timed` says whether the start came from espeak itself.
    """
    spans = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    starts: list[float | None] = [None] * len(spans)
    for offset, sec in events:
        hit = [i for i, (o, w) in enumerate(spans) if o <= offset < o + len(w)]
        if hit and starts[hit[0]] is None:
            starts[hit[0]] = sec
    timed = [s is not None for s in starts]
    # the first word starts the clip when espeak gave it no event: words before the first timed
    # one are then filled from 0 like any other gap
    known = sorted({0, *(i for i, s in enumerate(starts) if s is not None)})
    starts[0] = starts[0] if starts[0] is not None else 0.0
    bounds = known + [len(spans)]
    for a, b in zip(bounds, bounds[1:], strict=False):  # fill words between two timed words
        end = starts[b] if b < len(spans) and starts[b] is not None else dur
        for j in range(a + 1, b):
            starts[j] = starts[a] + (end - starts[a]) * (j - a) / (b - a)
    ends = starts[1:] + [dur]
    return [{"word": w.strip(".,?!;:"), "start": round(s, 3), "end": round(max(s, e), 3),
             "timed": ok} for (_, w), s, e, ok in zip(spans, starts, ends, timed, strict=True)]


def segments(text: str) -> list[tuple[str, str]]:
    """Split tagged text into ("text", words) and ("tag", name) segments, in order."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _TAG.finditer(text):
        if text[pos : m.start()].strip():
            out.append(("text", text[pos : m.start()].strip()))
        out.append(("tag", m.group(1)))
        pos = m.end()
    if text[pos:].strip():
        out.append(("text", text[pos:].strip()))
    if not any(kind == "text" for kind, _ in out):
        raise ValueError(f"text {text!r} has no words to speak")
    return out


def render_utterance(spec: UtteranceSpec, sr: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Audio (float32, `sr` Hz) and the record of everything planted in it."""
    rng = np.random.default_rng(zlib.crc32(f"{seed}:{spec.utt_id}".encode()))
    voice = spec.voice
    pieces: list[np.ndarray] = []
    words: list[dict] = []
    tags: list[dict] = []
    t = 0.0
    speaker_f0 = None
    for kind, value in segments(spec.text):
        if kind == "text":
            r = engine().render(value, voice.espeak_name, spec.rate, voice.pitch)
            audio = _trim_end(_resample(r.audio, r.sample_rate, sr))
            dur = len(audio) / sr
            for w in align_words(value, r.words, dur):
                words.append({**w, "start": round(t + w["start"], 3), "end": round(t + w["end"], 3)})
            speaker_f0 = speaker_f0 or median_f0(audio, sr)
        else:
            f0 = speaker_f0 if speaker_f0 and speaker_f0 == speaker_f0 else (
                200.0 if voice.gender == "female" else 100.0)
            event = (laughter(f0, sr, rng, voice.gender == "female") if value == "laughter"
                     else breath(sr, rng))
            gap = np.zeros(int(_GAP_S * sr), np.float32)
            audio = np.concatenate([gap, event, gap])
            tags.append({"tag": value, "start": round(t + _GAP_S, 3),
                         "end": round(t + _GAP_S + len(event) / sr, 3)})
            dur = len(audio) / sr
        pieces.append(audio.astype(np.float32))
        t += dur
    audio = np.concatenate(pieces)
    record = {
        "utt_id": spec.utt_id, "split": spec.split, "domain": spec.domain,
        "sentence_id": spec.sentence_id,
        "text": spec.text, "text_plain": spec.text_plain, "instruction": spec.instruction,
        "prompt_id": spec.prompt_id, "voice_id": voice.voice_id, "gender": voice.gender,
        "accent": voice.accent, "variant": voice.variant, "espeak_pitch": voice.pitch,
        "rate": spec.rate, "rate_bin": spec.rate_bin,
        "f0_median": round(median_f0(audio, sr), 2), "duration": round(len(audio) / sr, 3),
        "tags": tags, "words": words, "path": f"wav/{spec.utt_id}.wav",
    }
    return audio, record
