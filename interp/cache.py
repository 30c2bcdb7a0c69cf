"""`python -m interp.cache --layers 12 | 0-23 | 4,12,20`: cache residual streams of the corpus.

Teacher-forced passes over (text + prompt speech + target speech) of one corpus split, several
layers in one pass, into a resumable sharded store (see `interp.store.writer`). Under
`torchrun --nproc-per-node N -m interp.cache …` the shards are split across the ranks.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from interp.audio.tokenize_corpus import MANIFEST as TOKENS_MANIFEST
from interp.audio.tokenize_corpus import load_tokens, tokenize_corpus
from interp.cli import run_cli
from interp.corpus.table import TABLE, load_table
from interp.hooks.points import HOOK_KINDS
from interp.models.backbone import TinyCosyBackbone
from interp.models.data import make_examples
from interp.models.text_tokenizer import load_tokenizer
from interp.models.tinycosy import WEIGHTS, TinyCosy
from interp.paths import CODEC_DIR, TINYCOSY_DIR
from interp.store.writer import StoreSpec, fingerprint, write_store


def parse_layers(text: str, n_layers: int) -> tuple[int, ...]:
    """"12", "0-23" or "4,12,20" → layer indices, each checked against the model's depth; a range
    that runs backwards (12-4) is refused, not read as no layer at all."""
    spans: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            spans.append((int(lo), int(hi or lo)))
    except ValueError as exc:
        raise ValueError(f"--layers {text!r}: write 12, 0-23 or 4,12,20") from exc
    for first, last in spans:
        if last < first:
            raise ValueError(f"--layers {text!r}: the range {first}-{last} runs backwards; "
                             f"write {last}-{first}")
    out = [layer for first, last in spans for layer in range(first, last + 1)]
    bad = [layer for layer in out if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist: the model has layers 0–{n_layers - 1}")
    return tuple(sorted(set(out)))


def parse_hook_kind(text: str) -> str:
    kind = text if text.startswith("hook_") else f"hook_{text}"
    if kind not in HOOK_KINDS:
        raise ValueError(f"unknown hook {text!r}: use one of "
                         f"{', '.join(k[5:] for k in HOOK_KINDS)}")
    return kind


def resolve_model(model: str | Path) -> tuple[Path, bool]:
    """(export folder, is TinyEdit) of `--model`: tinycosy, tinyedit[:<dir>] or a folder."""
    from interp.edit.model import TINYEDIT_DIR, is_tinyedit

    text = str(model)
    if text == "tinycosy":
        return TINYCOSY_DIR, False
    if text == "tinyedit" or text.startswith("tinyedit:"):
        return Path(text.partition(":")[2] or TINYEDIT_DIR), True
    return Path(text), is_tinyedit(text)


def corpus_triples(args: argparse.Namespace, rows: list[dict], is_edit: bool) -> list[tuple]:
    """(example, utterance row, prompt row) of the selected splits. For TinyEdit the corpus is a
    pairs folder (`python -m interp.edit build`): the target takes the utterance slot and the
    source speech the prompt slot."""
    splits = args.split.split(",")
    tokenizer = load_tokenizer(resolve_model(args.model)[0])
    if is_edit:
        from interp.edit.build import load_pairs
        from interp.edit.data import store_examples

        pairs = [p for s in splits for p in load_pairs(args.corpus, s)][: args.max_utts or None]
        if not pairs:
            raise ValueError(f"split {args.split!r} of the pairs in {args.corpus} is empty")
        return store_examples(pairs, rows, load_tokens(args.tokens), tokenizer)
    split_rows = [r for r in rows if r["split"] in splits][: args.max_utts or None]
    if not split_rows:
        raise ValueError(f"split {args.split!r} of {args.corpus} is empty")
    index = {r["utt_id"]: i for i, r in enumerate(rows)}
    examples = make_examples(split_rows, load_tokens(args.tokens), tokenizer,
                             drop_prompt_text=0.0, prompt_rows=rows)
    by_id = {r["utt_id"]: r for r in rows}
    return [(ex, index[ex.utt_id], index[by_id[ex.utt_id]["prompt_id"]]) for ex in examples]


def build_cache(args: argparse.Namespace) -> dict:
    folder, is_edit = resolve_model(args.model)
    model = TinyCosy.load(folder)
    backbone = TinyCosyBackbone(model, "tinyedit" if is_edit else "tinycosy")
    layers = parse_layers(args.layers, backbone.n_layers)
    hook = parse_hook_kind(args.hook)
    if not (Path(args.tokens) / TOKENS_MANIFEST).exists():
        tokenize_corpus(Path(args.corpus), Path(args.codec), Path(args.tokens))
    rows = load_table(args.corpus)
    triples = corpus_triples(args, rows, is_edit)
    spec = StoreSpec(model=fingerprint(folder / WEIGHTS),
                     corpus=fingerprint(Path(args.corpus) / TABLE), hook=hook, layers=layers,
                     d_model=backbone.d_model, split=args.split, shard_utts=args.shard_utts)
    rank, world, barrier = distributed()
    return write_store(Path(args.out), backbone, spec, triples, rank, world, barrier)


def distributed():
    """(rank, world size, barrier) under torchrun (gloo, CPU or GPU), else (0, 1, None)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world, dist.barrier


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.cache", description=__doc__)
    parser.add_argument("--layers", default="12", help="12, 0-23 or 4,12,20 (default: 12)")
    parser.add_argument("--hook", default="resid_post", help="resid_pre|resid_mid|resid_post|"
                        "attn_out|mlp_out (default: resid_post)")
    parser.add_argument("--split", default="train", help="corpus split, or several "
                        "joined by commas, e.g. heldout_sentences,heldout_voices (default: train)")
    parser.add_argument("--max-utts", type=int, default=0, help="first N utterances (0 = all)")
    parser.add_argument("--shard-utts", type=int, default=64, help="utterances per shard")
    parser.add_argument("--model", default=str(TINYCOSY_DIR),
                        help="tinycosy, tinyedit[:<dir>] or an export folder (default: the "
                        "shipped TinyCosy); for tinyedit, --corpus is a pairs folder of "
                        "`python -m interp.edit build` and --tokens its tokens/")
    parser.add_argument("--corpus", type=Path, default=Path("runs/tinycosy/corpus"))
    parser.add_argument("--tokens", type=Path, default=Path("runs/tinycosy/tokens"))
    parser.add_argument("--codec", type=Path, default=CODEC_DIR)
    parser.add_argument("--out", type=Path, default=Path("runs/tinycosy/acts"))
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    m = build_cache(args)
    if int(os.environ.get("RANK", "0")) > 0:
        return
    mb = sum(f.stat().st_size for f in args.out.rglob("*.np*")) / 1e6
    print(f"\ncached {m['positions']:,} positions × layers {m['spec']['layers']} "
          f"({m['spec']['hook']}, split {m['spec']['split']}) in {time.time() - start:.0f} s, "
          f"{mb:.1f} MB → {args.out}")


if __name__ == "__main__":
    run_cli(main)
