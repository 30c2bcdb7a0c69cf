"""Training examples for TinyCosy: (text ids, prompt speech tokens, target speech tokens).

The prompt is another utterance of the same voice, cut at a word boundary to at most
`max_prompt_s` seconds; its text is the words spoken before the cut. With probability
`drop_prompt_text` the prompt text is left out, so that a bare prompt wav works at inference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from interp.models.phonemes import PhonemeTokenizer
from interp.models.text_tokenizer import lm_text
from interp.models.tinycosy import TinyCosy

TOKEN_RATE = 25.0


@dataclass(frozen=True)
class Example:
    utt_id: str
    text_ids: torch.Tensor  # (n_text,)
    prompt: torch.Tensor  # (n_prompt,) speech tokens
    target: torch.Tensor  # (n_target,) speech tokens
    # (n_target, 2) per target frame, the first and last index into `text_ids` of the word being
    # spoken (-1 in pauses), for `--attn-guide` and `interp.models.alignment`
    spoken_span: torch.Tensor | None = None


def cut_prompt(row: dict, tokens: np.ndarray, max_s: float) -> tuple[str, np.ndarray]:
    """Prompt text and tokens of `row` up to the last word boundary before `max_s` seconds.

    A row without word timings (an imported recording whose words could not be placed) gives a
    bare prompt: no text, its first `max_s` seconds of tokens (TinyCosy is trained on bare
    prompts too, see `drop_prompt_text`)."""
    if not row.get("words"):
        return "", tokens[: max(1, int(max_s * TOKEN_RATE))]
    words = [w for w in row["words"] if w["end"] <= max_s]
    if not words:  # a very slow first word: keep it whole
        words = row["words"][:1]
    end = words[-1]["end"]
    # Keep tags that end before the cut, in their place in the text.
    items = [(w["start"], w["word"]) for w in words]
    items += [(t["start"], f"[{t['tag']}]") for t in row["tags"] if t["end"] <= end]
    text = " ".join(x for _, x in sorted(items))
    return text, tokens[: max(1, int(np.ceil(end * TOKEN_RATE)))]


def word_spans(row: dict, text: str, offsets: list[tuple[int, int]],
               n_frames: int) -> torch.Tensor:
    """(n_frames, 2): per speech frame of `row`, the first and last index of the text tokens of the
    word being spoken at the frame's centre, -1 where no word is (pauses, tags). `text` is the
    whole LM text the character `offsets` were encoded from; the row's text is its end."""
    spans = torch.full((n_frames, 2), -1, dtype=torch.long)
    cursor = len(text) - len(row["text"])
    for w in row["words"]:
        pos = text.find(w["word"], cursor)
        if pos < 0:  # a word the text spells otherwise: leave its frames unlabelled
            continue
        cursor = pos + len(w["word"])
        toks = [i for i, (a, b) in enumerate(offsets) if a < cursor and b > pos]
        if not toks:
            continue
        lo = max(0, int(np.ceil(w["start"] * TOKEN_RATE - 0.5)))
        hi = min(n_frames, int(np.ceil(w["end"] * TOKEN_RATE - 0.5)))
        spans[lo:hi] = torch.tensor([toks[0], toks[-1]])
    return spans


def make_examples(rows: list[dict], tokens: dict[str, np.ndarray],
                  tokenizer: Tokenizer | PhonemeTokenizer,
                  max_prompt_s: float = 3.0, drop_prompt_text: float = 0.2,
                  seed: int = 0, prompt_rows: list[dict] | None = None) -> list[Example]:
    """One example per row that has a prompt (looked up in `prompt_rows`, default `rows`);
    rows without tokens are a clear error."""
    by_id = {r["utt_id"]: r for r in (prompt_rows or rows)}
    rng = random.Random(seed)
    missing = [r["utt_id"] for r in rows if r["utt_id"] not in tokens]
    if missing:
        raise ValueError(f"{len(missing)} utterances have no speech tokens (e.g. {missing[0]}); "
                         "run `python -m interp.audio tokenize` on this corpus")
    out = []
    for r in rows:
        prompt_row = by_id.get(r["prompt_id"])
        if prompt_row is None:
            continue
        p_text, p_tok = cut_prompt(prompt_row, tokens[prompt_row["utt_id"]], max_prompt_s)
        if rng.random() < drop_prompt_text:
            p_text = ""
        text = lm_text(r["text"], p_text, r["instruction"])
        enc = tokenizer.encode(text)
        target = tokens[r["utt_id"]]
        # Word labels need character offsets into `text`; the phoneme front end's are into its
        # phoneme string, so it gives them apart.
        offsets = (tokenizer.char_offsets(text) if isinstance(tokenizer, PhonemeTokenizer)
                   else enc.offsets)
        spans = word_spans(r, text, offsets, len(target))
        out.append(Example(r["utt_id"], torch.tensor(enc.ids), torch.from_numpy(p_tok.copy()),
                           torch.from_numpy(target.copy()), spans))
    return out


def position_modality(n_text: int, n_prompt: int, n_target: int) -> list[str]:
    """Modality of each position of TinyCosy's [sos] text [task_id] prompt target."""
    return TinyCosy.modality(n_text, n_prompt, n_target)
