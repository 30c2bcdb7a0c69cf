"""`python -m interp.models.compare --old A/eval.json ... --new B/eval.json ...`: is B better than A?

Two checkpoints evaluated by `interp.models.evaluate` on the same plans (same corpus, --n and
--seed; one eval.json per plan, given in the same order on both sides) are compared sentence by
sentence: the paired WER and laughter differences (new − old) with 95% intervals, pooled over all
plans. One plan of 50 sentences resolves about ±5 WER points; pooling a second plan (--seed 1) is
how a gain of a few points becomes visible (data/README.md, stage 4).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.cli import add_config_args, config_from_args, run_cli
from interp.models.eval_plan import compare, load_samples


@dataclass(frozen=True)
class CompareConfig:
    """Which evaluations to pair."""

    old: tuple[str, ...] = ()
    """eval.json files of the baseline checkpoint, one per plan"""
    new: tuple[str, ...] = ()
    """eval.json files of the new checkpoint, the same plans in the same order"""
    out: str = ""
    """optional JSON file for the result"""
    other_voices: bool = False
    """pair by sentence only, the voices may differ: e.g. `evaluate --voices heldout` (old)
    against `--voices train` (new) of one checkpoint, what a voice's being unseen costs"""


def pooled_samples(paths: tuple[str, ...] | list[str]) -> list[dict]:
    """The per-sentence samples of several eval.json files, concatenated in order."""
    return [row for p in paths for row in load_samples(Path(p))]


def compare_evals(cfg: CompareConfig) -> dict:
    if not cfg.old or len(cfg.old) != len(cfg.new):
        raise ValueError("give one eval.json per plan on each side, e.g. --old a0.json a1.json "
                         "--new b0.json b1.json")
    old, new = pooled_samples(cfg.old), pooled_samples(cfg.new)
    if len(old) != len(new):  # compare() re-checks sentences and voices pair by pair
        raise ValueError(f"{len(old)} sentences on the old side, {len(new)} on the new; evaluate "
                         "both with the same --corpus, --n and --seed, plan by plan")

    def mean_wer(rows: list[dict]) -> float | None:
        w = [r["wer"] for r in rows if r.get("wer") is not None]
        return round(float(np.mean(w)), 4) if w else None

    result = compare(old, new, not cfg.other_voices) | {"n_sentences": len(new), "wer_old": mean_wer(old),
                                  "wer_new": mean_wer(new), "old": list(cfg.old),
                                  "new": list(cfg.new)}
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.models.compare", description=__doc__)
    add_config_args(parser, CompareConfig)
    r = compare_evals(config_from_args(CompareConfig, parser.parse_args()))
    d = r["wer_diff"]
    print(f"{r['n_sentences']} sentences in {len(r['new'])} plan(s): WER {r['wer_old']} -> "
          f"{r['wer_new']}")
    if d["mean"] is not None:
        print(f"  paired WER difference {d['mean']:+} (95% CI {d['ci95'][0]:+} to "
              f"{d['ci95'][1]:+}); sentences better / worse / same {r['wer_better_worse_same']}")
    lt = r["laughter_with_tag_diff"]
    print(f"  laughter with the tag: {lt['mean']:+} (95% CI {lt['ci95'][0]:+} to {lt['ci95'][1]:+})")


if __name__ == "__main__":
    run_cli(main)
