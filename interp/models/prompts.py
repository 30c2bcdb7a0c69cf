"""The prompt bank: one short prompt (text + speech tokens) per corpus voice, shipped with the
model so that `tts(text, prompt="en-gb-x-rp+f3@p55")` works without the corpus on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from interp.models.data import cut_prompt

FILE = "prompts.json"


def write_prompt_bank(rows: list[dict], tokens: dict[str, np.ndarray], folder: Path,
                      max_s: float = 3.0) -> dict:
    """Per voice: the first utterance in corpus order that is at normal rate without tags, else
    the first without tags, else the first."""
    best: dict[str, tuple[int, dict]] = {}
    for r in rows:
        if r["utt_id"] not in tokens:
            continue
        rank = (r["rate_bin"] != "normal") + 2 * bool(r["tags"])
        if r["voice_id"] not in best or rank < best[r["voice_id"]][0]:
            best[r["voice_id"]] = (rank, r)
    bank: dict[str, dict] = {}
    for v, (_, r) in sorted(best.items()):
        text, tok = cut_prompt(r, tokens[r["utt_id"]], max_s)
        bank[v] = {"utt_id": r["utt_id"], "gender": r["gender"], "accent": r["accent"],
                   "split": r["split"], "f0_median": r["f0_median"], "text": text,
                   "tokens": tok.tolist()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE).write_text(json.dumps(bank))
    return bank


def load_prompt_bank(folder: str | Path) -> dict[str, dict]:
    path = Path(folder) / FILE
    if not path.exists():
        raise FileNotFoundError(f"no prompt bank at {path}; it is written by "
                                "`python -m interp.models.train`")
    return json.loads(path.read_text())
