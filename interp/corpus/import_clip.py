"""One recording of `python -m interp.corpus import`: read and resample its audio, check it
(missing, unreadable, empty, silent, too long), parse its tag spans, and time its words (CTC
forced alignment, or spread over the clip's sound). `importer.py` runs these over a source.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from interp.audio import SAMPLE_RATE
from interp.audio.wav import FRAME_S, SILENCE_DBFS, active_seconds

_STRIP = ".,?!;:\"()"


class Skip(Exception):
    """A bad row: `reason` (a key of REASONS) and a one-line detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def load_clip(path: str, max_seconds: float, min_speech_s: float) -> np.ndarray:
    """16 kHz mono float32 samples of `path` (any rate, any channels), or Skip."""
    p = Path(path)
    if not p.is_file():
        raise Skip("missing", f"no audio file at {p}")
    if p.stat().st_size == 0:
        raise Skip("empty", "the file is 0 bytes")
    try:
        info = sf.info(str(p))
        if info.frames == 0:
            raise Skip("empty", "the file holds no samples")
        if info.duration > max_seconds:
            raise Skip("too_long", f"{info.duration:.1f} s > --max-seconds {max_seconds:g}")
        audio, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:  # Skip is none of these
        raise Skip("unreadable", " ".join(str(exc).split())) from exc
    if audio.shape[0] == 0:
        raise Skip("empty", "the file holds no samples")
    if not np.isfinite(audio).all():
        raise Skip("unreadable", "the audio holds NaN or infinite samples")
    mono = audio.mean(1)
    if sr != SAMPLE_RATE:
        g = np.gcd(int(sr), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(sr) // g)
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32)
    if active_seconds(mono, SAMPLE_RATE) < min_speech_s:
        raise Skip("silent", f"less than {min_speech_s:g} s above {SILENCE_DBFS:g} dBFS")
    return mono


def parse_tags(raw, duration: float) -> list[dict]:
    """Tag spans from a JSON list (of {"tag", "start", "end"} or [tag, start, end]) or the text
    form `laughter:1.2-1.8;breath:3.0-3.4`; Skip when malformed or outside the clip."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return []
    try:
        if isinstance(raw, str):
            text = raw.strip()
            if text.startswith("["):
                raw = json.loads(text)
            else:
                raw = []
                for part in filter(None, (p.strip() for p in text.split(";"))):
                    tag, span = part.rsplit(":", 1)
                    start, end = span.split("-")
                    raw.append({"tag": tag, "start": start, "end": end})
        spans = [(t["tag"], t["start"], t["end"]) if isinstance(t, dict) else tuple(t)
                 for t in raw]
        tags = [{"tag": str(tag).strip("[] "), "start": round(float(a), 3),
                 "end": round(float(b), 3)} for tag, a, b in spans]
    except (ValueError, KeyError, TypeError) as exc:
        raise Skip("bad_tags", f"tags {raw!r}: {exc}") from exc
    for t in tags:
        if not (t["tag"] and 0 <= t["start"] < t["end"] <= duration + 0.01):
            raise Skip("bad_tags", f"tag span {t} is empty or outside the {duration:.2f} s clip")
    return sorted(tags, key=lambda t: t["start"])


def normalize_text(text: str) -> str:
    """The recogniser's normalisation (`interp.instruments.text`), imported on first use: the
    instruments package loads torch, which `python -m interp.corpus build` need not wait for."""
    from interp.instruments.text import normalize_text as normalize

    return normalize(text)


def _letters(word: str) -> int:
    return len(normalize_text(word).replace(" ", ""))


def sound_bounds(audio: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[float, float]:
    """(first, last) second of the clip's sound (25 ms frames above -50 dBFS); the whole clip
    when no frame is."""
    n = max(1, int(FRAME_S * sr))
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    loud = np.flatnonzero(np.sqrt((frames.astype(np.float64) ** 2).mean(1))
                          > 10 ** (SILENCE_DBFS / 20)) if len(frames) else []
    if not len(loud):
        return 0.0, len(audio) / sr
    return loud[0] * n / sr, min(len(audio), (loud[-1] + 1) * n) / sr


def spread(words: list[str], start: float, end: float) -> list[tuple[float, float]]:
    """Consecutive spans over [start, end], one per word, each as long as its letters + 1."""
    weights = np.array([_letters(w) + 1 for w in words], np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def fill_gaps(spans: list[tuple[float, float] | None], words: list[str], start: float,
              end: float) -> list[tuple[float, float]]:
    """Spans for the words alignment could not place (None), spread over the time between the
    placed words around them (the clip's edges at its ends)."""
    out: list[tuple[float, float]] = []
    i = 0
    while i < len(spans):
        if spans[i] is not None:
            out.append(spans[i])  # type: ignore[arg-type]
            i += 1
            continue
        j = i
        while j < len(spans) and spans[j] is None:
            j += 1
        lo = out[-1][1] if out else start
        hi = spans[j][0] if j < len(spans) else end  # type: ignore[index]
        out += spread(words[i:j], lo, max(lo, hi))
        i = j
    return out


def word_timings(audio: np.ndarray, text_plain: str, timings: str,
                 asr: str = "") -> tuple[list[dict], str]:
    """The words of `text_plain` with start/end seconds, and how they were timed: "ctc"
    (forced alignment; `timed` where the word was aligned itself), "whole" (asked for) or
    "fallback" (alignment failed: spread over the clip's sound, timed=False)."""
    tokens = text_plain.split()
    duration = len(audio) / SAMPLE_RATE
    lo, hi = sound_bounds(audio)
    how, aligned = timings, None
    if timings == "ctc":
        from interp.instruments.meter import asr_model  # torch and the recogniser: only here

        aligned = asr_model(asr or None).align(audio, tokens)
        how = "ctc" if aligned is not None else "fallback"
    if aligned is None:
        spans, timed = spread(tokens, lo, hi), [False] * len(tokens)
    else:
        spans, timed = fill_gaps(aligned, tokens, 0.0, duration), [a is not None for a in aligned]
    words = []
    for w, (a, b), ok in zip(tokens, spans, timed, strict=True):
        a, b = round(min(a, duration), 3), round(min(b, duration), 3)
        words.append({"word": w.strip(_STRIP) or w, "start": a, "end": max(a, b), "timed": ok})
    return words, how
