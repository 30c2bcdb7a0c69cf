"""`python -m benchmarks [--out benchmarks/results.json]`: run every benchmark, write one JSON."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from benchmarks import capture, dashboard, sae_training, tinycosy_training, training_memory
from benchmarks import steering as steering_bench


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--quick", action="store_true", help="fewer sequences (a smoke run)")
    args = parser.parse_args()
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "torch": torch.__version__, "cuda": torch.cuda.is_available(),
               "date": time.strftime("%Y-%m-%d %H:%M")}
    results = {"machine": machine,
               "capture": capture.run(n_seqs=8 if args.quick else 40, repeats=1 if args.quick else 3,
                                      n_utts=16 if args.quick else 256),
               "dashboard": dashboard.run(repeats=1 if args.quick else 5),
               "sae_training": sae_training.run(sae_training.QUICK if args.quick
                                                else sae_training.SAEBenchConfig())}
    results["tinycosy_training"] = tinycosy_training.run(
        **({"n_batches": 1, "repeats": 1} if args.quick else {}))
    results["training_memory"] = training_memory.run(
        **({"steps": 2, "n_examples": 32} if args.quick else {}))
    results["steering"] = steering_bench.run(
        **({"n_seqs": 2, "repeats": 1, "batch": 2} if args.quick else {}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"{capture.line(results['capture'])} → {args.out}")
    print(sae_training.line(results["sae_training"]))
    print(tinycosy_training.line(results["tinycosy_training"]))
    print(training_memory.line(results["training_memory"]))
    print(steering_bench.line(results["steering"]))
    print(dashboard.line(results["dashboard"]))


if __name__ == "__main__":
    main()
