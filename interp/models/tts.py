"""`tts(text, prompt, instruction)` → 16 kHz waveform with the shipped TinyCosy.

The TTS engine is TinyCosy's backbone itself (`interp.models.tinycosy_backbone`); this module
keeps one loaded copy for quick calls:

    from interp.models.tts import tts
    audio = tts("Hello there.", prompt="en-us+f2@p50")
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from interp.models.backbone import Backbone
from interp.models.registry import load_backbone


@lru_cache(maxsize=4)
def default_backbone(model: str = "tinycosy") -> Backbone:
    return load_backbone(model)


def tts(text: str, prompt, instruction: str | None = None, seed: int = 0,
        model: str = "tinycosy") -> np.ndarray:
    """16 kHz float32 speech of `text` in the voice of `prompt` (voice id, wav path or array)."""
    return default_backbone(model).tts(text, prompt, instruction, seed)


if __name__ == "__main__":  # an older hint named this module: it speaks through the one TTS CLI
    from interp.cli import run_cli
    from interp.models.__main__ import main

    run_cli(main)
