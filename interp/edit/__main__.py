"""TinyEdit, the embedded audio-editing LM.

    python -m interp.edit build [--out runs/tinyedit/pairs] [--n-pairs 3000]   edit pairs + tokens
    python -m interp.edit train [--max-minutes 60]                            fine-tune TinyCosy
    python -m interp.edit evaluate [--n 8]                                    eval.json + MMAE judge
    python -m interp.edit "Make the voice sound male." --source in.wav [--out edited.wav]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp.cli import add_config_args, config_from_args, run_cli
from interp.edit.plan import EditPlanConfig
from interp.paths import CODEC_DIR

COMMANDS = ("build", "train", "evaluate")


def _build(argv: list[str]) -> None:
    from interp.edit.build import build_pairs

    p = argparse.ArgumentParser(prog="python -m interp.edit build",
                                description="render the edit pairs and tokenize them")
    p.add_argument("--out", type=Path, default=Path("runs/tinyedit/pairs"), help="output folder")
    p.add_argument("--codec", type=Path, default=CODEC_DIR, help="speech codec folder")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    add_config_args(p, EditPlanConfig)
    args = p.parse_args(argv)
    m = build_pairs(config_from_args(EditPlanConfig, args), args.out, args.codec, args.workers)
    s = m["summary"]
    print(f"\nedit pairs: {args.out}  ({s['pairs']} pairs, {s['utterances']} utterances, "
          f"{s['hours']:.2f} h, built in {s['build_seconds']} s)")
    for key in ("split", "operation", "mmae_operation"):
        print(f"  {key:14s} " + "  ".join(f"{k}={v}" for k, v in sorted(s[key].items())))


def _train(argv: list[str]) -> None:
    from interp.edit.train import EditTrainConfig, main_train

    p = argparse.ArgumentParser(prog="python -m interp.edit train",
                                description="fine-tune TinyCosy's weights into TinyEdit")
    add_config_args(p, EditTrainConfig)
    main_train(config_from_args(EditTrainConfig, p.parse_args(argv)))


def _evaluate(argv: list[str]) -> None:
    from interp.edit.evaluate import EditEvalConfig, main_evaluate

    p = argparse.ArgumentParser(prog="python -m interp.edit evaluate",
                                description="measure TinyEdit's edits on held-out pairs")
    add_config_args(p, EditEvalConfig)
    main_evaluate(config_from_args(EditEvalConfig, p.parse_args(argv)))


def _edit(argv: list[str]) -> None:
    from interp.edit.editor import main_edit

    p = argparse.ArgumentParser(prog="python -m interp.edit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("instruction", help='e.g. "Make the voice sound male."')
    p.add_argument("--source", type=Path, required=True, help="16 kHz wav to edit")
    p.add_argument("--text", default="", help="what the source says (optional; helps content)")
    p.add_argument("--out", type=Path, default=Path("edited.wav"))
    p.add_argument("--model", type=Path, default=None, help="TinyEdit folder (data/tinyedit)")
    p.add_argument("--codec", type=Path, default=CODEC_DIR)
    p.add_argument("--seed", type=int, default=0)
    main_edit(p.parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        {"build": _build, "train": _train, "evaluate": _evaluate}[argv[0]](argv[1:])
    else:
        _edit(argv)


if __name__ == "__main__":
    run_cli(main)
