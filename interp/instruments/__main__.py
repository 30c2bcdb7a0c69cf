"""`python -m interp.instruments path.wav|dir [--ref-text "..."] [--out results.jsonl|csv]`:
measure clips with every instrument (P(male), laughter, voiced duration, duration, median F0,
transcript, WER/CER against a reference text) and print and write one row per file.

A clip out of the instruments' domain is flagged (silence, low_sample_rate, clipping; see
`measure`). Exit codes: 0 every file measured; 2 bad input, or no file could be read; 3 some
files could not be read (their rows hold the error; the rest are written)."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm
from transformers.utils import logging as hf_logging

from interp.cli import EXIT_PARTIAL, EXIT_USAGE, run_cli
from interp.instruments.common import InstrumentError, audio_files
from interp.instruments.meter import INSTRUMENTS, measure

logger = logging.getLogger(__name__)

COLUMNS = ("file", "duration_s", "voiced_duration_s", "median_f0_hz", "p_male", "laughter",
           "transcript", "wer", "wer_corrected", "transcript_open", "wer_open", "flags")


def write_rows(rows: list[dict], path: Path) -> None:
    """JSON lines (.jsonl/.json) or CSV (.csv; lists become JSON strings), written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v
                            for k, v in r.items()})
    elif path.suffix in (".jsonl", ".json"):
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        raise ValueError(f"--out {path}: use a .jsonl or .csv file name")
    os.replace(tmp, path)


def table(rows: list[dict]) -> str:
    """A compact one-line-per-file view of the main readings."""
    def cell(v: object) -> str:
        if isinstance(v, list):
            return ",".join(map(str, v))
        return f"{v:.3g}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["\t".join(COLUMNS)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r.get('file', '?')}\terror: {r['error']}")
        else:
            lines.append("\t".join(cell(r.get(c)) for c in COLUMNS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m interp.instruments", description=__doc__)
    p.add_argument("path", help="an audio file or a folder of them (searched recursively)")
    p.add_argument("--ref-text", default=None, help="reference text for WER/CER (every file)")
    p.add_argument("--out", type=Path, default=None, help="write rows to this .jsonl or .csv")
    p.add_argument("--skip", nargs="*", default=[], choices=INSTRUMENTS,
                   help="instruments to leave out")
    for name, hf in (("gender", "Wav2Vec2ForSequenceClassification"), ("laughter", ""),
                     ("asr", "Wav2Vec2ForCTC")):
        p.add_argument(f"--{name}-dir", default=None,
                       help=f"{name} model folder (default data/instruments/{name})"
                            + (f"; any local HF {hf} checkpoint works" if hf else ""))
    p.add_argument("--json", action="store_true", help="print full JSON rows, not a table")
    args = p.parse_args(argv)
    hf_logging.disable_progress_bar()  # no "Loading weights" bars between the result rows
    if args.out is not None and args.out.suffix not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"--out {args.out}: use a .jsonl or .csv file name")
    files = audio_files(args.path)
    dirs = {k: getattr(args, f"{k}_dir") for k in ("gender", "laughter", "asr")
            if getattr(args, f"{k}_dir")}
    rows = []
    for f in tqdm(files, desc="measure", unit="file", disable=len(files) < 3):
        try:
            rows.append(measure(f, ref_text=args.ref_text, model_dirs=dirs, skip=tuple(args.skip)))
        except InstrumentError as exc:
            if len(files) == 1:
                raise
            rows.append({"file": str(f), "error": str(exc)})
            print(f"error: {exc}", file=sys.stderr)
    print("\n".join(json.dumps(r) for r in rows) if args.json else table(rows))
    if args.out is not None:
        write_rows(rows, args.out)
        print(f"{len(rows)} row(s) → {args.out}")
    failed = sum("error" in r for r in rows)
    if failed:
        print(f"error: {failed} of {len(rows)} file(s) could not be measured", file=sys.stderr)
        sys.exit(EXIT_USAGE if failed == len(rows) else EXIT_PARTIAL)


if __name__ == "__main__":
    run_cli(main)
