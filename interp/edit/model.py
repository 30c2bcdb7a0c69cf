"""TinyEdit's files and text format: a TinyCosy (same layout, same tokenizer, same codec) whose
text part is an edit instruction and whose prompt speech is the source to edit.

    [sos] + text_embed("You are a helpful assistant. <instruction><|endofprompt|><transcript>")
          + [task_id] + speech_embed(source tokens)  →  edited speech tokens … eos

The transcript (what the source says) is optional: training leaves it out of a fraction of the
examples, so a bare wav can be edited. A TinyEdit folder is a TinyCosy export plus `edit.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interp.models.backbone import TinyCosyBackbone
from interp.models.generate import SamplingConfig
from interp.models.text_tokenizer import SYSTEM_PROMPT, lm_text
from interp.models.tinycosy import TinyCosy
from interp.paths import DATA

TINYEDIT_DIR = DATA / "tinyedit"
EDIT_FILE = "edit.json"
# edited length relative to the source: slowing down can nearly double it
EDIT_SAMPLING = SamplingConfig(min_ratio=0.4, max_ratio=2.5)


def edit_text(instruction: str, transcript: str = "") -> str:
    """TinyCosy's text layout with the edit instruction where the TTS instruction goes."""
    if not instruction.strip():
        raise ValueError("empty instruction: say what to change, e.g. 'Speak faster.'")
    if transcript.strip():
        return lm_text(transcript, "", instruction)
    return f"{SYSTEM_PROMPT} {instruction}<|endofprompt|>"


def is_tinyedit(folder: str | Path) -> bool:
    return (Path(folder) / EDIT_FILE).exists()


def load_edit_info(folder: str | Path) -> dict:
    path = Path(folder) / EDIT_FILE
    if not path.exists():
        raise FileNotFoundError(f"no TinyEdit model in {folder} (expected {EDIT_FILE}); train "
                                "one with `python -m interp.edit train`")
    return json.loads(path.read_text())


class TinyEditBackbone(TinyCosyBackbone):
    """TinyEdit behind the `Backbone` interface: `prompt` is the source speech, `text_ids` the
    instruction (and transcript); hook points and teacher forcing are TinyCosy's."""

    def __init__(self, model: TinyCosy, name: str = "tinyedit"):
        super().__init__(model, name)

    def edit(self, text_ids: torch.Tensor, source: torch.Tensor,
             sampling: SamplingConfig | None = None) -> list[int]:
        """Edited speech tokens, length bounded relative to the source."""
        return self.generate(text_ids, source, len(source), sampling or EDIT_SAMPLING)


def load_tinyedit(folder: str | Path | None = None,
                  device: str | torch.device = "cpu") -> TinyEditBackbone:
    folder = Path(folder or TINYEDIT_DIR)
    load_edit_info(folder)  # a clear error for a plain TinyCosy or an empty folder
    return TinyEditBackbone(TinyCosy.load(folder, device))
