"""Speakers of the corpus: espeak-ng accent × variant × pitch, each with a checked gender.

Not every accent+variant combination applies the variant's pitch (the prototype saw `en-gb+f1`
render at ~99 Hz through the command line), so every voice's median F0 is measured when the corpus
is built and a voice whose F0 contradicts its gender label is refused.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from interp.audio.pitch import median_f0
from interp.corpus.espeak import engine

ACCENTS: tuple[str, ...] = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
MALE_VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS: tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5")
# Male espeak variants sit at 90–110 Hz, female ones at 170–230 Hz: 145 Hz separates them.
GENDER_F0_SPLIT_HZ = 145.0
CHECK_SENTENCE = "This is a short test of the speaking voice, said the reader."


@dataclass(frozen=True)
class Voice:
    """One corpus speaker."""

    voice_id: str  # e.g. "en-gb-x-rp+f3@p55"
    accent: str
    variant: str
    pitch: int  # espeak-ng pitch parameter, 0–99

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"

    @property
    def espeak_name(self) -> str:
        return f"{self.accent}+{self.variant}"

    def to_dict(self) -> dict:
        return {**asdict(self), "gender": self.gender}


def make_voice(accent: str, variant: str, pitch: int) -> Voice:
    if variant not in MALE_VARIANTS + FEMALE_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use one of m1–m7 or f1–f5")
    return Voice(f"{accent}+{variant}@p{pitch}", accent, variant, pitch)


def parse_voice(voice_id: str) -> Voice:
    """Inverse of `Voice.voice_id` (``accent+variant@pNN``); a malformed id is a clear error."""
    try:
        name, pitch = voice_id.split("@p")
        accent, variant = name.split("+")
        return make_voice(accent, variant, int(pitch))
    except ValueError as exc:
        raise ValueError(f"bad voice id {voice_id!r}: write it as accent+variant@pNN, "
                         f"e.g. en-gb-x-rp+f3@p55 ({exc})") from exc


def default_voices(seed: int = 0) -> list[Voice]:
    """Every accent × variant, each with its own espeak pitch drawn from 35–65."""
    rng = random.Random(seed)
    return [make_voice(a, v, rng.randrange(35, 66, 5))
            for a in ACCENTS for v in MALE_VARIANTS + FEMALE_VARIANTS]


def check_voice(voice: Voice) -> float:
    """Median F0 of the voice on a check sentence; raises when it contradicts the gender label."""
    r = engine().render(CHECK_SENTENCE, voice.espeak_name, rate=175, pitch=voice.pitch)
    f0 = median_f0(r.audio, r.sample_rate)
    is_male = f0 < GENDER_F0_SPLIT_HZ
    if f0 != f0 or is_male != (voice.gender == "male"):
        raise ValueError(f"voice {voice.voice_id} is labelled {voice.gender} but renders at "
                         f"{f0:.0f} Hz; drop it from the voice list")
    return f0
