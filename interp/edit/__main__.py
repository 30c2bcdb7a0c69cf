"""TinyEdit, the embedded audio-editing LM.

    python -m interp.edit build [--out runs/tinyedit/pairs] [--n-pairs 3000]   edit pairs + tokens
    python -m interp.edit train [--max-minutes 60]                            fine-tune TinyCosy
    python -m interp.edit evaluate [--n 8]                                    eval.json + MMAE judge
    python -m interp.edit "Make the voice sound male." --source in.wav [--out edited.wav]
"""

from __future__ import annotations

import argparse
import sys

from interp.audio import SAMPLE_RATE
from interp.cli import add_config_args, config_from_args, run_cli
from interp.edit.plan import EditPlanConfig

COMMANDS = ("build", "train", "evaluate")


def _build(argv: list[str]) -> None:
    from interp.edit.build import PairsJob, run_build

    p = argparse.ArgumentParser(prog="python -m interp.edit build",
                                description="render the edit pairs and tokenize them")
    add_config_args(p, PairsJob)
    add_config_args(p, EditPlanConfig)
    args = p.parse_args(argv)
    job = config_from_args(PairsJob, args)
    s = run_build(job, config_from_args(EditPlanConfig, args))["summary"]
    print(f"\nedit pairs: {job.out}  ({s['pairs']} pairs, {s['utterances']} utterances, "
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
    from interp.edit.editor import EditConfig, run_edit

    p = argparse.ArgumentParser(prog="python -m interp.edit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, EditConfig, positional=("instruction",))
    cfg = config_from_args(EditConfig, p.parse_args(argv))
    audio = run_edit(cfg)
    print(f"wrote {cfg.out} ({len(audio) / SAMPLE_RATE:.2f} s): {cfg.instruction!r} applied to "
          f"{cfg.source}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        {"build": _build, "train": _train, "evaluate": _evaluate}[argv[0]](argv[1:])
    else:
        _edit(argv)


if __name__ == "__main__":
    run_cli(main)
