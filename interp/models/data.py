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
    # (n_target,) per target frame, the text token of the word being spoken (-100 in pauses);
    # from the corpus's word timings, for the `--align-loss` auxiliary objective
    spoken: torch.Tensor | None = None
    # (n_target, 2) per target frame, the first and last index into `text_ids` of the word being
    # spoken (-1 in pauses), for `--attn-guide` and `interp.models.alignment`
    spoken_span: torch.Tensor | None = None


def cut_prompt(row: dict, tokens: np.ndarray, max_s: float) -> tuple[str, np.ndarray]:
    """Prompt text and tokens of `row` up to the last word boundary before `max_s` seconds."""
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


def spoken_tokens(ids: list[int], spans: torch.Tensor) -> torch.Tensor:
    """Per frame, the id of the first text token of the word being spoken, -100 in pauses."""
    first = spans[:, 0]
    return torch.where(first >= 0, torch.tensor(ids)[first.clamp_min(0)], -100)


def crop_rows(rows: list[dict], tokens: dict[str, np.ndarray], frac: float,
              seed: int = 0) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Word-span crops of `frac` × len(rows) random rows: a random run of 1 to all of a row's
    words, its speech tokens cut at the words' timings, as rows of their own (same voice, prompt
    and instruction) with their tokens.

    Why: the model speaks the grammar's fixed words and guesses the slot fillers: a sentence's
    template tells it most of what comes next, so it need not read. A span that starts anywhere
    has no template to lean on, only its text.
    """
    if not 0 <= frac <= 4:
        raise ValueError(f"--word-crops {frac}: give crops per training utterance in [0, 4], "
                         "e.g. 0.5")
    rng = random.Random(seed)
    pool = [r for r in rows if r["words"] and r["utt_id"] in tokens]
    out, cut = [], {}
    for n in range(round(frac * len(rows)) if pool else 0):
        r = rng.choice(pool)
        k = rng.randint(1, len(r["words"]))
        i = rng.randint(0, len(r["words"]) - k)
        words = r["words"][i : i + k]
        start, end = words[0]["start"], words[-1]["end"]
        lo = max(0, int(np.ceil(start * TOKEN_RATE - 0.5)))
        hi = int(np.ceil(end * TOKEN_RATE - 0.5))
        if hi - lo < 2:
            continue
        tags = [t for t in r["tags"] if start <= t["start"] and t["end"] <= end]
        items = [(w["start"], w["word"]) for w in words] + [(t["start"], f"[{t['tag']}]")
                                                            for t in tags]
        utt_id = f"{r['utt_id']}@crop{n}"
        shift = lo / TOKEN_RATE
        out.append({**r, "utt_id": utt_id, "text": " ".join(x for _, x in sorted(items)),
                    "words": [{**w, "start": w["start"] - shift, "end": w["end"] - shift}
                              for w in words],
                    "tags": [{**t, "start": t["start"] - shift, "end": t["end"] - shift}
                             for t in tags]})
        cut[utt_id] = tokens[r["utt_id"]][lo:hi]
    return out, cut


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
        # Word labels need character offsets into `text`; the phoneme front end's are not.
        spans = (None if isinstance(tokenizer, PhonemeTokenizer)
                 else word_spans(r, text, enc.offsets, len(target)))
        out.append(Example(r["utt_id"], torch.tensor(enc.ids), torch.from_numpy(p_tok.copy()),
                           torch.from_numpy(target.copy()),
                           None if spans is None else spoken_tokens(enc.ids, spans), spans))
    return out


def position_modality(n_text: int, n_prompt: int, n_target: int) -> list[str]:
    """Modality of each position of TinyCosy's [sos] text [task_id] prompt target."""
    return TinyCosy.modality(n_text, n_prompt, n_target)
