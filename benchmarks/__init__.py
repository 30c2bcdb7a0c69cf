"""Benchmarks: ratios measured side by side in one run (never timed tests)."""

from __future__ import annotations

import json
from pathlib import Path

from interp.atomic import atomic_write_json


def write_entry(out: Path, key: str, result: dict) -> None:
    """(Re)place one benchmark's entry of the results JSON `out`, keeping the others."""
    results = json.loads(out.read_text()) if out.exists() else {}
    results[key] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, results)
