"""`python -m interp.models.random_init --like data/tinycosy --out runs/random_tinycosy`

The control that says how much of an interpretability figure a trained model earns: a TinyCosy
of the same shape, tokenizer, text front end, prompt bank and codec, with freshly initialised
weights (the trainer's own initialisation, seeded). SAEs on randomly initialised transformers can
score about as interpretable as on trained ones (Heap et al., 2025), so every stage that reports
a detection AUROC or a planted-concept recall can run on this folder with `--model` and put its
number beside the trained model's:

    python -m interp.cache --model runs/random_tinycosy --out runs/random/acts ...
    python -m sae.train --model runs/random_tinycosy --acts runs/random/acts ...
    python -m autointerp.run --model runs/random_tinycosy ...

Only the weights differ; the files that describe training or evaluation (train.json, eval*.json,
ablation and budget records) are not copied, and `random_init.json` says what the folder is.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from interp.atomic import atomic_write_json
from interp.cli import run_cli
from interp.models.tinycosy import CONFIG, WEIGHTS, TinyCosy, TinyCosyConfig, read_config
from interp.models.tinycosy_backbone import codec_dir_of, write_codec_pointer

# files of a model folder that describe its runs, not the model: not copied
RUN_RECORDS = ("train.json", "eval", "ablation_", "budget_")
RECORD = "random_init.json"


def random_like(like: str | Path, out: str | Path, seed: int = 0) -> Path:
    """A randomly initialised TinyCosy in `out`, shaped and equipped like the one in `like`."""
    like, out = Path(like), Path(out)
    if not (like / CONFIG).exists():
        raise FileNotFoundError(f"no TinyCosy folder at {like} (expected {CONFIG})")
    if out.resolve() == like.resolve():
        raise ValueError("--out must be another folder than --like (it would lose the weights)")
    cfg = read_config(like / CONFIG)
    if cfg.pop("architecture", "tinycosy") != "tinycosy":
        raise ValueError(f"{like} holds another architecture; the control is for TinyCosy")
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(like.iterdir()):
        if f.is_file() and f.name != WEIGHTS and not f.name.startswith(RUN_RECORDS):
            shutil.copy2(f, out / f.name)
    # the codec pointer may be relative to `like` (data/tinycosy → ../codec): point at that codec
    write_codec_pointer(out, codec_dir_of(like))
    torch.manual_seed(seed)
    TinyCosy(TinyCosyConfig(**cfg)).save(out)
    atomic_write_json(out / RECORD, {
        "what": "randomly initialised control: the shape, tokenizer, prompt bank and codec of "
                f"{like}, untrained weights (TinyCosy's own initialisation, seed {seed})",
        "like": str(like), "seed": seed})
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m interp.models.random_init", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--like", default="data/tinycosy", help="the trained TinyCosy folder to copy")
    p.add_argument("--out", default="runs/random_tinycosy", help="the control's folder")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed")
    a = p.parse_args()
    out = random_like(a.like, a.out, a.seed)
    print(f"randomly initialised TinyCosy like {a.like} → {out} "
          f"(use it with --model {out})")
    print(json.dumps(json.loads((out / RECORD).read_text()), indent=1))


if __name__ == "__main__":
    run_cli(main)
