"""Listening instruments: speaker gender P(male), laughter, content (ASR → WER), voiced duration
and pitch. Trained weights ship in data/instruments/<name>/ (each with a card.json) and load
lazily on first use.

    from interp.instruments import measure
    measure("out.wav", ref_text="the cat sat")  # → {p_male, laughter, transcript, wer, ...}

`JUDGE_INSTRUMENTS` is what the acoustic MMAE judge (interp.judge.acoustic_backend) registers:
"laughter": fn(wav, sr) → probability, "asr": fn(wav, sr) → transcript, "gender": fn → P(male).
"""

from __future__ import annotations

from interp.instruments.meter import laughter_probability, measure, p_male, transcribe

JUDGE_INSTRUMENTS = {"laughter": laughter_probability, "asr": transcribe, "gender": p_male}

__all__ = ["JUDGE_INSTRUMENTS", "laughter_probability", "measure", "p_male", "transcribe"]
