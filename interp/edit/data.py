"""TinyEdit's text layout and training examples: (instruction [+ transcript] ids, source tokens, target tokens).

They are TinyCosy's `Example`s with the source speech in the prompt slot, so TinyCosy's loss,
batching and training loop apply unchanged.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from tokenizers import Tokenizer

from interp.models.data import Example
from interp.models.text_tokenizer import SYSTEM_PROMPT, lm_text


def edit_text(instruction: str, transcript: str = "") -> str:
    """TinyCosy's text layout with the edit instruction where the TTS instruction goes."""
    if not instruction.strip():
        raise ValueError("empty instruction: say what to change, e.g. 'Speak faster.'")
    if transcript.strip():
        return lm_text(transcript, "", instruction)
    return f"{SYSTEM_PROMPT} {instruction}<|endofprompt|>"


def make_edit_examples(pairs: list[dict], tokens: dict[str, np.ndarray], tokenizer: Tokenizer,
                       drop_transcript: float = 0.2, seed: int = 0) -> list[Example]:
    """One example per pair; a pair whose source or target has no tokens is a clear error."""
    missing = [p["pair_id"] for p in pairs
               if p["source_id"] not in tokens or p["target_id"] not in tokens]
    if missing:
        raise ValueError(f"{len(missing)} pairs have no speech tokens (e.g. {missing[0]}); "
                         "run `python -m interp.edit build` again to tokenize them")
    rng = random.Random(seed)
    out = []
    for p in pairs:
        transcript = "" if rng.random() < drop_transcript else p["text_plain"]
        ids = tokenizer.encode(edit_text(p["instruction"], transcript)).ids
        out.append(Example(p["pair_id"], torch.tensor(ids),
                           torch.from_numpy(tokens[p["source_id"]].copy()),
                           torch.from_numpy(tokens[p["target_id"]].copy())))
    return out


def store_examples(pairs: list[dict], rows: list[dict], tokens: dict[str, np.ndarray],
                   tokenizer: Tokenizer) -> list[tuple[Example, int, int]]:
    """What `interp.store.writer.write_store` caches for TinyEdit: (example, row of the target,
    row of the source) in the pairs folder's utterance table — the target in the utterance slot
    and the source in the prompt slot, as TinyCosy's (utterance, prompt) triples."""
    index = {r["utt_id"]: i for i, r in enumerate(rows)}
    examples = make_edit_examples(pairs, tokens, tokenizer, drop_transcript=0.0)
    return [(ex, index[p["target_id"]], index[p["source_id"]])
            for ex, p in zip(examples, pairs, strict=True)]
