"""`python -m interp.models.record`: one JSON record of a TinyCosy run, for `data/tinycosy/`.

A full run of `make tinycosy` leaves its training (`<run>/export/train.json`), its evaluation on
both domains paired against the shipped model (`<run>/eval`, `<run>/eval_baseline`) and the same
outputs heard by the open-English ears (`<run>/eval_open_ears`, `<run>/eval_baseline_open_ears`).
This gathers the figures the docs quote — per domain: WER with its CI on each decode, the espeak
reference's round trip, gender, slow/fast, laughter, text conditioning; the paired difference new
minus shipped — with the commands that made them, so every number in docs/tinycosy.md has a small
committed file and the command that rebuilds it:

    python -m interp.models.record --run runs/tc2048 --what "…" --out data/tinycosy/open_2048_2h.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from interp.cli import run_cli

DOMAIN_FIGURES = ("n_sentences", "wer", "wer_ci95", "wer_greedy", "wer_open",
                  "wer_espeak_reference_open", "wer_roundtrip_reference",
                  "wer_roundtrip_reference_open", "gender_agreement",
                  "gender_agreement_classifier", "slow_over_fast", "normal_between",
                  "laughter_with_tag", "laughter_without_tag", "text_conditioning_nats")
"""The figures of each domain a record keeps (the rest stay in the run's eval.json)."""


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _by_domain(ev: dict) -> dict:
    """{domain: the kept figures} of an evaluation (`--domain both`, or its one domain)."""
    domains = ev.get("by_domain") or {ev["config"]["domain"]: ev}
    return {d: {k: f.get(k) for k in DOMAIN_FIGURES} for d, f in domains.items()}


def _paired(ev: dict) -> dict | None:
    """New minus baseline, per domain (each on its own decode), from `vs_baseline(_by_domain)`."""
    keep = ("wer_key", "wer_diff", "wer_better_worse_same", "laughter_with_tag_diff")
    by = ev.get("vs_baseline_by_domain") or ({ev["config"]["domain"]: ev["vs_baseline"]}
                                             if ev.get("vs_baseline") else None)
    return None if by is None else {d: {k: v.get(k) for k in keep if k in v}
                                    for d, v in by.items()}


def _command(module: str, config: dict) -> str:
    """The command line that `config` (a run's saved settings) is, every setting spelt out."""
    parts = [f"python -m {module}"]
    for k, v in config.items():
        if v is None or v == "":
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag if v else f"--no-{k.replace('_', '-')}")
        else:
            parts.append(f"{flag} {v}")
    return " ".join(parts)


def build_record(run: Path, what: str, command: str = "") -> dict:
    """The record of `run` (a `make tinycosy` folder); refused in one line when its training or
    evaluation is missing."""
    train = _read(run / "export" / "train.json")
    new = _read(run / "eval" / "eval.json")
    if train is None or new is None:
        raise ValueError(f"{run}: needs export/train.json and eval/eval.json (run `make tinycosy "
                         f"TC={run}` to the end first)")
    rec: dict = {
        "what": what,
        "command": command or _command("interp.models.train", train.get("config", {})),
        "eval_command": _command("interp.models.evaluate", new["config"]),
        "train": {k: train.get(k) for k in ("steps", "curriculum_steps", "epochs",
                                             "minutes_this_run", "heldout_loss",
                                             "heldout_loss_by_step")},
        "new": _by_domain(new)}
    if (base := _read(run / "eval_baseline" / "eval.json")) is not None:
        rec["shipped"] = _by_domain(base)
    rec["new_minus_shipped"] = _paired(new)
    ears = _read(run / "eval_open_ears" / "eval.json")
    if ears is not None:  # the same outputs, heard by the open-English ears
        rec["open_ears"] = {"asr": ears["config"]["asr"], "new": _by_domain(ears),
                            "new_minus_shipped": _paired(ears)}
        if (b := _read(run / "eval_baseline_open_ears" / "eval.json")) is not None:
            rec["open_ears"]["shipped"] = _by_domain(b)
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.models.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a `make tinycosy` TC folder")
    parser.add_argument("--what", required=True, help="one paragraph: what the run was, verdict")
    parser.add_argument("--command", default="", help="the training command as run (default: "
                        "spelt out from train.json's settings, which a resumed run overwrote)")
    parser.add_argument("--out", type=Path, required=True, help="the record (.json)")
    args = parser.parse_args()
    rec = build_record(args.run, args.what, args.command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"record of {args.run} → {args.out}")
    for d, f in rec["new"].items():
        paired = (rec["new_minus_shipped"] or {}).get(d, {}).get("wer_diff", {})
        print(f"  {d:8s} WER {f['wer']} (open decode {f['wer_open']}); paired vs shipped "
              f"{paired.get('mean')} {paired.get('ci95')}")


if __name__ == "__main__":
    run_cli(main)
