"""`tts(text, prompt, instruction)` → waveform, with the shipped TinyCosy, tokenizer and codec.

`prompt` is a voice id of the prompt bank (`python -m interp.models --list-voices`), a wav
path, or a 16 kHz waveform; a wav prompt is cut to its first 3 s and used without prompt text.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from interp.audio.codec import SpeechCodec
from interp.audio.wav import check_prompt, read_wav
from interp.device import pick_device
from interp.models.generate import SamplingConfig, generate_tokens
from interp.models.prompts import load_prompt_bank
from interp.models.text_tokenizer import length_units, lm_text, load_tokenizer
from interp.models.tinycosy import TinyCosy
from interp.paths import CODEC_DIR, TINYCOSY_DIR

PROMPT_SECONDS = 3.0


class TTS:
    """The shipped text-to-speech pipeline: text → speech tokens → waveform."""

    def __init__(self, model_dir: Path = TINYCOSY_DIR, codec_dir: Path = CODEC_DIR,
                 device: str = "auto"):
        self.device = pick_device(device)
        self.model = TinyCosy.load(model_dir, self.device)
        self.tokenizer = load_tokenizer(model_dir)
        self.codec = SpeechCodec.load(codec_dir)
        self.prompts = load_prompt_bank(model_dir)
        if self.codec.n_codes != self.model.cfg.speech_codes:
            raise ValueError(f"codec in {codec_dir} has {self.codec.n_codes} codes but the model "
                             f"expects {self.model.cfg.speech_codes}; use the codec it was "
                             "trained with")

    def prompt(self, prompt: str | Path | np.ndarray) -> tuple[str, np.ndarray]:
        """(prompt text, prompt speech tokens) of a voice id, wav path or waveform."""
        if isinstance(prompt, str) and prompt in self.prompts:
            p = self.prompts[prompt]
            return p["text"], np.array(p["tokens"], dtype=np.int64)
        source = f"prompt {prompt}" if isinstance(prompt, (str, Path)) else "prompt"
        if isinstance(prompt, (str, Path)):
            path = Path(prompt)
            if not path.exists():
                raise ValueError(f"prompt {prompt!r} is neither a voice id nor a wav file; "
                                 "list voices with `python -m interp.models --list-voices`")
            prompt = read_wav(path, self.codec.sample_rate)
        check_prompt(np.asarray(prompt, np.float32), self.codec.sample_rate, source)
        tokens = self.codec.encode(np.asarray(prompt, np.float32)[: int(PROMPT_SECONDS * 16000)])
        return "", tokens

    def tokens(self, text: str, prompt, instruction: str | None = None,
               sampling: SamplingConfig | None = None) -> list[int]:
        p_text, p_tokens = self.prompt(prompt)
        ids = self.tokenizer.encode(lm_text(text, p_text, instruction)).ids
        n_text = length_units(self.tokenizer, text)
        return generate_tokens(self.model, torch.tensor(ids), torch.from_numpy(p_tokens), n_text,
                               sampling or SamplingConfig())

    def __call__(self, text: str, prompt, instruction: str | None = None,
                 seed: int = 0, sampling: SamplingConfig | None = None) -> np.ndarray:
        """Speech of `text`; `sampling` (CosyVoice's by default) with its seed replaced by `seed`."""
        toks = self.tokens(text, prompt, instruction,
                           replace(sampling or SamplingConfig(), seed=seed))
        if not toks:
            return np.zeros(0, np.float32)
        return self.codec.decode(np.array(toks))


@lru_cache(maxsize=1)
def default_tts() -> TTS:
    return TTS()


def tts(text: str, prompt, instruction: str | None = None, seed: int = 0) -> np.ndarray:
    """16 kHz float32 speech of `text` in the voice of `prompt` (voice id, wav path or array)."""
    return default_tts()(text, prompt, instruction, seed)
