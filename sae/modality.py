"""The modality of an SAE latent, by the paper's rule — the one definition the sweep and
auto-interp share.

A latent is *audio-modal* when more than `AUDIO_MIN` of its top activations sit on speech
positions, *text-modal* when less than `TEXT_MAX` do, and *mixed* in between.
"""

from __future__ import annotations

AUDIO_MIN = 0.8
TEXT_MAX = 0.2


def modality_tag(speech_frac: float, audio: float = AUDIO_MIN, text: float = TEXT_MAX) -> str:
    """"audio", "text" or "mixed" for a latent whose top activations are `speech_frac` speech."""
    return "audio" if speech_frac > audio else "text" if speech_frac < text else "mixed"
