"""Does the model read its text? Teacher-forced figures of `interp.models.evaluate`.

Text conditioning: held-out loss given an utterance's own sentence against another one; attention
alignment: whether some head points at the word being spoken (`interp.models.alignment`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from interp.corpus.table import load_table
from interp.models.backbone import Backbone
from interp.models.eval_plan import in_domain


def corpus_tokens(corpus: Path, tokens: Path) -> tuple[list[dict], dict] | None:
    """The corpus table and its speech tokens, read once for the teacher-forced figures; None
    (with a warning) when the corpus has no speech tokens here."""
    from interp.audio.tokenize_corpus import load_tokens

    if not (tokens / "manifest.json").exists():
        logging.getLogger(__name__).warning("no speech tokens in %s: text conditioning and "
                                            "teacher-forced WER skipped", tokens)
        return None
    return load_table(corpus), load_tokens(tokens)


def text_conditioning(engine: Backbone, rows: list[dict], codes: dict, n: int,
                      domain: str = "both") -> dict:
    """Held-out loss (nats per speech token, teacher-forced) of heldout_voices utterances (of
    `domain`) given their own sentence and given another one of similar length (swapped in
    pairs); `gain` is what reading the text is worth. `rows`, `codes`: the corpus table and its
    speech tokens."""
    from interp.models.data import make_examples
    from interp.models.loss import heldout_loss

    held = [r for r in rows if r["split"] == "heldout_voices" and in_domain(r, domain)][:n]
    swapped = [dict(r) for r in held]
    by_len = sorted(range(len(held)), key=lambda i: len(held[i]["text"]))
    for a, b in zip(by_len[0::2], by_len[1::2], strict=False):
        swapped[a]["text"], swapped[b]["text"] = held[b]["text"], held[a]["text"]
    own, other = (make_examples(r, codes, engine.tokenizer, drop_prompt_text=0.0,
                                prompt_rows=rows) for r in (held, swapped))
    right, wrong = heldout_loss(engine.model, own, 16), heldout_loss(engine.model, other, 16)
    return {"n": len(own), "own_text": round(right, 4), "other_text": round(wrong, 4),
            "gain": round(wrong - right, 4)}


def text_alignment(engine: Backbone, rows: list[dict], codes: dict, n: int,
                   domain: str = "both") -> dict | None:
    """Does a head point at the word being spoken? `interp.models.alignment`'s report on n
    heldout_sentences utterances of `domain` (teacher-forced): the best head, chance, and each
    layer's best on-word share. None for a front end without character offsets (phonemes)."""
    from interp.models.alignment import alignment_report
    from interp.models.data import make_examples

    held = [r for r in rows if r["split"] == "heldout_sentences" and in_domain(r, domain)][:n]
    examples = make_examples(held, codes, engine.tokenizer, drop_prompt_text=0.0, prompt_rows=rows)
    if not examples or examples[0].spoken_span is None:
        return None
    rep = alignment_report(engine.model, examples)
    return {"n": len(examples), "frames": rep["frames"], "chance": rep["chance"],
            "best_head": rep["best_head"],
            "best_on_word_per_layer": [round(max(r), 4) for r in rep["on_word"]]}
