"""TinyCosy behind the `Backbone` interface: the model, its BPE (or phoneme) text tokenizer, the
project codec as speech tokenizer and waveform decoder, and the prompt bank of voices.

A TinyCosy export folder holds `model.safetensors`, `config.json`, `tokenizer.json`,
`prompts.json` and `speech_codec.json`, which names the codec its speech tokens come from
(relative to the folder; the shipped one points at `data/codec`). This backbone is the TTS
engine: `bb.tts("Hello.", "en-us+f2@p50")` is a waveform.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from interp.audio import SAMPLE_RATE
from interp.audio.code_profile import codebook_profile
from interp.audio.codec import SpeechCodec
from interp.models.alignment import pointer_head, text_pointer
from interp.models.backbone import SpeechLMBackbone
from interp.models.prompts import FILE as PROMPTS_FILE
from interp.models.prompts import load_prompt_bank
from interp.models.text_tokenizer import FILE as TOKENIZER_FILE
from interp.models.text_tokenizer import length_units, lm_text, load_tokenizer
from interp.models.tinycosy import WEIGHTS, TinyCosy
from interp.paths import CODEC_DIR, REPO

log = logging.getLogger(__name__)

CODEC_POINTER = "speech_codec.json"


def write_codec_pointer(export: Path, codec_dir: Path) -> None:
    """Record in an export which codec its speech tokens come from (relative when it can be)."""
    codec_dir, export = Path(codec_dir).resolve(), Path(export).resolve()
    # relative inside the repository (data/tinycosy → ../codec travels with a clone); absolute
    # elsewhere, so that a copied export still finds a codec outside the repository
    inside = REPO in codec_dir.parents and REPO in export.parents
    where = os.path.relpath(codec_dir, export) if inside else str(codec_dir)
    (export / CODEC_POINTER).write_text(json.dumps({"codec_dir": where}, indent=1))


def codec_dir_of(folder: Path) -> Path:
    """The codec an export's speech tokens come from: its `speech_codec.json`, else the
    project codec (`data/codec`)."""
    pointer = folder / CODEC_POINTER
    if pointer.exists():
        return (folder / json.loads(pointer.read_text())["codec_dir"]).resolve()
    return CODEC_DIR


class TinyCosyBackbone(SpeechLMBackbone):
    """TinyCosy (or any model of its layout) with its tokenizers, voices and decoder."""

    def __init__(self, model: TinyCosy, name: str = "tinycosy", tokenizer=None,
                 codec: SpeechCodec | None = None, voices: dict | None = None,
                 spec: str | None = None, folder: Path | None = None,
                 codec_dir: Path | None = None):
        super().__init__(model, name, model.cfg.n_layers, model.cfg.hidden, spec,
                         weights=(folder / WEIGHTS,) if folder is not None else ())
        self.tokenizer, self.codec, self.folder = tokenizer, codec, folder
        self.codec_dir = codec_dir
        self.voices = voices or {}
        self._profile = None
        if codec is not None and codec.n_codes != model.cfg.speech_codes:
            raise ValueError(f"the codec has {codec.n_codes} codes but the model expects "
                             f"{model.cfg.speech_codes}; use the codec it was trained with")

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu",
             codec_dir: str | Path | None = None, name: str = "tinycosy",
             spec: str | None = None) -> TinyCosyBackbone:
        folder = Path(folder)
        model = TinyCosy.load(folder, device)
        named = codec_dir is not None or (folder / CODEC_POINTER).exists()
        codec_dir = Path(codec_dir) if codec_dir else codec_dir_of(folder)
        codec = SpeechCodec.load(codec_dir)
        if not named and codec.n_codes != model.cfg.speech_codes:
            # an export that names no codec and does not fit the project's: tokens only
            log.warning("%s names no codec and has %d speech codes, %s has %d: no speech "
                        "tokenizer or waveforms", folder, model.cfg.speech_codes, codec_dir,
                        codec.n_codes)
            codec, codec_dir = None, None
        tokenizer = load_tokenizer(folder) if (folder / TOKENIZER_FILE).exists() else None
        voices = load_prompt_bank(folder) if (folder / PROMPTS_FILE).exists() else {}
        return cls(model, name, tokenizer, codec, voices, spec, folder, codec_dir)

    @property
    def prompts(self) -> dict[str, dict]:
        """The prompt bank (voice id → text, tokens, gender, accent, split, f0_median)."""
        return self.voices

    # -- text -------------------------------------------------------------------------------
    def encode_text(self, text: str, prompt_text: str = "",
                    instruction: str | None = None) -> tuple[torch.Tensor, int]:
        """(ids of system + instruction + `<|endofprompt|>` + prompt text + text, length of
        `text` in the units of the length bounds)."""
        if self.tokenizer is None:
            return super().encode_text(text, prompt_text, instruction)
        ids = self.tokenizer.encode(lm_text(text, prompt_text, instruction)).ids
        return torch.tensor(ids), length_units(self.tokenizer, text)

    def token_texts(self, ids: list[int]) -> list[str]:
        if self.tokenizer is None:
            return super().token_texts(ids)
        return [self.tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]

    def text_pointer(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                     tokens: list[int]) -> list[int]:
        """Per frame of the output `tokens`: where in `text_ids` its trained pointer head reads
        (`interp.models.alignment.text_pointer`); refused in one line for an export without one."""
        if self.folder is None:
            raise ValueError("this TinyCosy was not loaded from an export: no text-pointer head "
                             "is known; use --positions window instead")
        layer, head = pointer_head(self.folder)
        return text_pointer(self.model, text_ids, prompt, tokens, layer, head)

    def special_id(self, token: str) -> int | None:
        return None if self.tokenizer is None else self.tokenizer.token_to_id(token)

    # -- speech -----------------------------------------------------------------------------
    def speech_tokens(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """25 Hz codec tokens of a mono waveform (resampled to the codec's rate)."""
        if self.codec is None:
            return super().speech_tokens(audio, sr)
        audio = np.asarray(audio, np.float32)
        if sr != self.codec.sample_rate:
            import librosa

            audio = librosa.resample(audio, orig_sr=sr, target_sr=self.codec.sample_rate)
        return self.codec.encode(audio)

    def tokenize_corpus(self, corpus: Path, out: Path, workers: int | None = None) -> dict:
        """The corpus's speech tokens with this model's codec (`interp.audio tokenize`)."""
        from interp.audio.tokenize_corpus import tokenize_corpus

        if self.codec_dir is None:
            return super().tokenize_corpus(corpus, out, workers)
        return tokenize_corpus(Path(corpus), self.codec_dir, Path(out), workers)

    def token_source(self) -> str | None:
        """The checksum of this model's codec (what `interp.audio tokenize` records)."""
        from interp.audio.tokenize_corpus import codec_checksum

        return codec_checksum(self.codec_dir) if self.codec_dir is not None else None

    def code_profile(self):
        """The codec's per-code acoustic profile, read from its code-book (cached)."""
        if self.codec is None:
            return None
        if self._profile is None:
            self._profile = codebook_profile(self.codec)
        return self._profile

    def render_missing(self) -> str:
        return "" if self.codec is not None else f"{self.spec} has no codec that fits it"

    def render(self, tokens: list[int] | np.ndarray, prompt=None) -> np.ndarray:
        """The codec's decoder (harmonic-plus-noise from code-book mel and F0); the voice is in
        the tokens themselves, so `prompt` is not needed."""
        if self.codec is None:
            return super().render(tokens, prompt)
        tokens = np.asarray(tokens, dtype=np.int64)
        return self.codec.decode(tokens) if tokens.size else np.zeros(0, np.float32)
