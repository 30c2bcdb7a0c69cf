"""`TinyEditor(instruction, source_wav)` → edited waveform: tokens in, TinyEdit, tokens out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from interp.audio.wav import read_audio
from interp.device import pick_device
from interp.edit.model import EDIT_SAMPLING, TINYEDIT_DIR, load_tinyedit
from interp.models.generate import SamplingConfig
from interp.paths import CODEC_DIR


class TinyEditor:
    """The shipped editing pipeline: source wav → tokens → TinyEdit → tokens → wav."""

    def __init__(self, model_dir: str | Path | None = None, codec_dir: str | Path | None = None,
                 device: str = "auto"):
        self.backbone = load_tinyedit(Path(model_dir or TINYEDIT_DIR), pick_device(device),
                                      codec_dir)
        self.codec = self.backbone.codec

    def source_tokens(self, source: str | Path | np.ndarray) -> np.ndarray:
        """Speech tokens of a wav path (any rate) or a 16 kHz waveform."""
        sr = self.backbone.sample_rate
        if isinstance(source, (str, Path)):
            source, sr = read_audio(source)
        return self.backbone.speech_tokens(np.asarray(source, np.float32), sr)

    def tokens(self, instruction: str, source_tokens: np.ndarray, transcript: str = "",
               seed: int = 0) -> list[int]:
        ids, _ = self.backbone.encode_text(transcript, instruction=instruction)
        sampling = SamplingConfig(**{**EDIT_SAMPLING.__dict__, "seed": seed})
        return self.backbone.edit(ids, torch.from_numpy(np.asarray(source_tokens)), sampling)

    def __call__(self, instruction: str, source: str | Path | np.ndarray, transcript: str = "",
                 seed: int = 0) -> np.ndarray:
        """16 kHz float32 audio of `source` edited as `instruction` asks (empty if nothing)."""
        toks = self.tokens(instruction, self.source_tokens(source), transcript, seed)
        return self.backbone.render(toks)


@dataclass(frozen=True)
class EditConfig:
    """One recording edited by TinyEdit as an instruction asks."""

    instruction: str
    """e.g. 'Make the voice sound male.'"""
    source: Path
    """16 kHz wav to edit"""
    text: str = ""
    """what the source says (optional; helps content)"""
    out: Path = Path("edited.wav")
    """wav file to write"""
    model: Path | None = None
    """TinyEdit folder (default: data/tinyedit)"""
    codec: Path = CODEC_DIR
    """speech codec folder"""
    seed: int = 0
    """sampling seed"""


def run_edit(cfg: EditConfig) -> np.ndarray:
    """Edit `cfg.source`, write the result to `cfg.out` and return it (16 kHz float32)."""
    editor = TinyEditor(cfg.model, cfg.codec)
    audio = editor(cfg.instruction, cfg.source, cfg.text, cfg.seed)
    sf.write(cfg.out, audio, editor.codec.sample_rate)
    return audio
