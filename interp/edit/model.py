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

from interp.edit.data import edit_text
from interp.models.data import Example
from interp.models.generate import SamplingConfig
from interp.models.text_tokenizer import SYSTEM_PROMPT, lm_text
from interp.models.tinycosy_backbone import TinyCosyBackbone
from interp.paths import DATA

TINYEDIT_DIR = DATA / "tinyedit"
EDIT_FILE = "edit.json"
# edited length relative to the source: slowing down can nearly double it
EDIT_SAMPLING = SamplingConfig(min_ratio=0.4, max_ratio=2.5)


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
    instruction (and transcript); hook points, teacher forcing and codec are TinyCosy's. Its
    corpus is a pairs folder (`python -m interp.edit build`)."""

    def encode_text(self, text: str, prompt_text: str = "",
                    instruction: str | None = None) -> tuple[torch.Tensor, int]:
        """(ids, n) of the edit instruction with `text` as the source's transcript (may be
        empty); `prompt_text` is unused: the source speech is the prompt. No instruction (None)
        is TinyCosy's own layout, the transcript alone: what the editor does unasked."""
        if instruction is None:
            layout = lm_text(text) if text.strip() else f"{SYSTEM_PROMPT}<|endofprompt|>"
        else:
            layout = edit_text(instruction, text)
        ids = self.tokenizer.encode(layout).ids
        return torch.tensor(ids), len(ids)

    def corpus_examples(self, corpus: Path, tokens: Path, splits: list[str],
                        max_utts: int = 0) -> list[tuple[Example, int, int]]:
        """(example, target row, source row) of the edit pairs of `splits`: the target in the
        utterance slot and the source speech in the prompt slot."""
        from interp.audio.tokenize_corpus import load_tokens
        from interp.corpus.table import load_table
        from interp.edit.build import load_pairs
        from interp.edit.data import store_examples

        pairs = [p for s in splits for p in load_pairs(corpus, s)][: max_utts or None]
        if not pairs:
            raise ValueError(f"split {','.join(splits)!r} of the pairs in {corpus} is empty")
        return store_examples(pairs, load_table(corpus), load_tokens(tokens), self.tokenizer)

    def edit(self, text_ids: torch.Tensor, source: torch.Tensor,
             sampling: SamplingConfig | None = None) -> list[int]:
        """Edited speech tokens, length bounded relative to the source."""
        return self.generate(text_ids, source, len(source), sampling or EDIT_SAMPLING)


def load_tinyedit(folder: str | Path | None = None, device: str | torch.device = "cpu",
                  codec_dir: str | Path | None = None) -> TinyEditBackbone:
    folder = Path(folder or TINYEDIT_DIR)
    load_edit_info(folder)  # a clear error for a plain TinyCosy or an empty folder
    spec = "tinyedit" if folder.resolve() == TINYEDIT_DIR.resolve() else f"tinyedit:{folder}"
    return TinyEditBackbone.load(folder, device, codec_dir, name="tinyedit", spec=spec)
