"""`TinyEditor(instruction, source_wav)` → edited waveform: tokens in, TinyEdit, tokens out."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from interp.audio.codec import SpeechCodec
from interp.audio.wav import read_wav
from interp.device import pick_device
from interp.edit.model import EDIT_SAMPLING, TINYEDIT_DIR, edit_text, load_tinyedit
from interp.models.generate import SamplingConfig
from interp.models.text_tokenizer import load_tokenizer
from interp.paths import CODEC_DIR


class TinyEditor:
    """The shipped editing pipeline: source wav → tokens → TinyEdit → tokens → wav."""

    def __init__(self, model_dir: str | Path | None = None, codec_dir: str | Path = CODEC_DIR,
                 device: str = "auto"):
        model_dir = Path(model_dir or TINYEDIT_DIR)
        self.backbone = load_tinyedit(model_dir, pick_device(device))
        self.tokenizer = load_tokenizer(model_dir)
        self.codec = SpeechCodec.load(codec_dir)
        codes = self.backbone.model.cfg.speech_codes
        if self.codec.n_codes != codes:
            raise ValueError(f"codec in {codec_dir} has {self.codec.n_codes} codes but the model "
                             f"expects {codes}; use the codec it was trained with")

    def source_tokens(self, source: str | Path | np.ndarray) -> np.ndarray:
        """Speech tokens of a 16 kHz wav path or waveform."""
        if isinstance(source, (str, Path)):
            source = read_wav(source, self.codec.sample_rate)
        return self.codec.encode(np.asarray(source, np.float32))

    def tokens(self, instruction: str, source_tokens: np.ndarray, transcript: str = "",
               seed: int = 0) -> list[int]:
        ids = torch.tensor(self.tokenizer.encode(edit_text(instruction, transcript)).ids)
        sampling = SamplingConfig(**{**EDIT_SAMPLING.__dict__, "seed": seed})
        return self.backbone.edit(ids, torch.from_numpy(np.asarray(source_tokens)), sampling)

    def __call__(self, instruction: str, source: str | Path | np.ndarray, transcript: str = "",
                 seed: int = 0) -> np.ndarray:
        """16 kHz float32 audio of `source` edited as `instruction` asks (empty if nothing)."""
        toks = self.tokens(instruction, self.source_tokens(source), transcript, seed)
        return self.codec.decode(np.array(toks)) if toks else np.zeros(0, np.float32)


def main_edit(args: argparse.Namespace) -> None:
    editor = TinyEditor(args.model, args.codec)
    audio = editor(args.instruction, args.source, args.text, args.seed)
    sf.write(args.out, audio, editor.codec.sample_rate)
    print(f"wrote {args.out} ({len(audio) / editor.codec.sample_rate:.2f} s): "
          f"{args.instruction!r} applied to {args.source}")
