"""The benchmark command runs (a smoke run; its figures are not asserted: timings live in
benchmarks, never in tests)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_benchmarks_quick(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert set(r["capture"]["tokens_per_s"]) == {"bare", "layer_12", "all_layers"}
    assert r["capture"]["bytes_per_token"]["all_layers"] > r["capture"]["bytes_per_token"]["layer_12"]
