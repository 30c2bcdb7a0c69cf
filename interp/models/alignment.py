"""Text-speech alignment in attention: does a head point at the word being spoken?

A TTS LM that reads its text needs a pointer into it: at each speech frame, some head should
attend to the word that frame speaks (Tacotron's alignment plots; the heads that track it in
VALL-E / CosyVoice-style LMs). This module measures that against the corpus's word timings
(`python -m interp.models.alignment --model data/tinycosy`); the guided-attention loss that asks
one head to be that pointer (`--attn-guide`) is in `interp.models.guide`. `text_pointer` reads
that head's pointer over a generated output (where in its text each frame is spoken), and
`pointer_head` says which head an export was trained to make the pointer.

Position s + j of a training sequence (s = last prompt position) predicts target frame j, so its
attention row is scored against frame j's word (`Example.spoken_span`, text index i sits at
sequence position 1 + i after [sos]).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from interp.cli import run_cli
from interp.models.data import Example
from interp.models.guide import attention_inputs, head_attention, word_mass
from interp.models.loss import embed_batch
from interp.models.tinycosy import TinyCosy


@torch.no_grad()
def alignment_report(model: TinyCosy, examples: list[Example]) -> dict:
    """Per layer and head, over the in-word target frames of `examples` (teacher-forced): the mean
    attention mass on the word being spoken, and how often the head's strongest text position
    within the sentence is on that word (`on_word`), against a uniform pick (`chance`)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    mass, hits, n, chance = np.zeros((L, H)), np.zeros((L, H)), 0, 0.0
    for ex in examples:
        if ex.spoken_span is None or not (ex.spoken_span[:, 0] >= 0).any():
            continue
        embeds, mask, starts = embed_batch(model, [ex], [ex.target])
        with attention_inputs(model, list(range(L))) as seen:
            model(embeds, attention_mask=mask)
        span = ex.spoken_span
        keep = (span[:, 0] >= 0).nonzero()[:, 0]
        # the sentence: from the first spoken word's first token to the end of the text
        lo_text = int(span[keep, 0].min())
        n_text = len(ex.text_ids)
        for layer in range(L):
            probs = head_attention(model, layer, seen[layer], mask)
            mass[layer] += word_mass(probs, starts, [ex]).sum(0).cpu().numpy()
            rows = probs[0, :, starts[0] + keep, 1 + lo_text : 1 + n_text]  # (H, n, sentence)
            top = rows.argmax(-1) + lo_text
            on = (top >= span[keep, 0]) & (top <= span[keep, 1])
            hits[layer] += on.sum(-1).cpu().numpy()
        n += len(keep)
        chance += float(((span[keep, 1] - span[keep, 0] + 1) / (n_text - lo_text)).sum())
    if not n:
        raise ValueError("no in-word frames: the examples need word timings (BPE front end)")
    on_word = hits / n
    best = np.unravel_index(on_word.argmax(), on_word.shape)
    return {"frames": n, "chance": round(chance / n, 4),
            "best_head": {"layer": int(best[0]), "head": int(best[1]),
                          "on_word": round(float(on_word[best]), 4),
                          "mass": round(float(mass[best] / n), 4)},
            "on_word": np.round(on_word, 4).tolist(), "mass": np.round(mass / n, 4).tolist()}


def pointer_head(folder: str | Path) -> tuple[int, int]:
    """(layer, head) that an exported TinyCosy was trained to make its text pointer
    (`--attn-guide`, its train.json)."""
    path = Path(folder) / "train.json"
    cfg = json.loads(path.read_text()).get("config", {}) if path.exists() else {}
    if not cfg.get("attn_guide"):
        raise ValueError(f"{folder} has no text-pointer head (it was not trained with "
                         "--attn-guide, or its train.json is missing): word-boundary edits need "
                         "one; use --positions window instead")
    return int(cfg.get("attn_guide_layer", 10)), int(cfg.get("attn_guide_head", 0))


@torch.no_grad()
def text_pointer(model: TinyCosy, text_ids: torch.Tensor, prompt: torch.Tensor,
                 tokens: list[int], layer: int, head: int) -> list[int]:
    """For each frame of a generated output `tokens`: the index into `text_ids` that the pointer
    head attends to most when the model predicts that frame (teacher-forced on the output; a head
    below an edited layer reads the same here as during the edited generation)."""
    if not tokens:
        return []
    ex = Example("pointer", text_ids, prompt, torch.as_tensor(tokens))
    embeds, mask, starts = embed_batch(model, [ex], [ex.target])
    with attention_inputs(model, [layer]) as seen:
        model(embeds, attention_mask=mask)
    probs = head_attention(model, layer, seen[layer], mask, [head])[0, 0]  # (T, T)
    rows = probs[starts[0]: starts[0] + len(tokens), 1: 1 + len(text_ids)]
    return rows.argmax(-1).tolist()


def main() -> None:
    from interp.audio.tokenize_corpus import load_tokens
    from interp.corpus.table import load_table
    from interp.models.data import make_examples
    from interp.models.text_tokenizer import load_tokenizer

    p = argparse.ArgumentParser(prog="python -m interp.models.alignment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="data/tinycosy", help="exported TinyCosy folder")
    p.add_argument("--corpus", default="runs/tinycosy/corpus")
    p.add_argument("--tokens", default="runs/tinycosy/tokens")
    p.add_argument("--split", default="heldout_sentences")
    p.add_argument("--n", type=int, default=50, help="utterances")
    p.add_argument("--out", default="", help="write the report here as JSON")
    a = p.parse_args()
    model = TinyCosy.load(a.model)
    rows = load_table(a.corpus)
    chosen = [r for r in rows if r["split"] == a.split][: a.n]
    if not chosen:
        raise ValueError(f"--split {a.split!r} has no utterances in {a.corpus}")
    ex = make_examples(chosen, load_tokens(a.tokens), load_tokenizer(a.model),
                       drop_prompt_text=0.0, prompt_rows=rows)
    rep = alignment_report(model, ex)
    b = rep["best_head"]
    print(f"{rep['frames']} in-word frames of {len(ex)} {a.split} utterances (teacher-forced)")
    print("best on-word share per layer: " + " ".join(f"{max(r):.2f}" for r in rep["on_word"]))
    print(f"best head: layer {b['layer']} head {b['head']}: its top sentence token is on the word "
          f"being spoken in {b['on_word']:.1%} of frames (chance {rep['chance']:.1%}); "
          f"attention mass on that word {b['mass']:.1%}")
    if a.out:
        Path(a.out).write_text(json.dumps(rep | {"model": a.model, "n": len(ex)}, indent=1))
        print(f"→ {a.out}")


if __name__ == "__main__":
    run_cli(main)
