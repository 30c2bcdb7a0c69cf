"""Atomic file writes: write a temporary sibling, then rename it over the target, so a killed
stage never leaves a half-written file where a finished one is expected."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def atomic_save(path: Path, save: Callable[[Path], object]) -> None:
    """`save(tmp)` writes the file; the temporary keeps the suffix (np.save, soundfile need it)."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    save(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_save(path, lambda p: p.write_text(text))


def atomic_write_json(path: Path, obj, **dumps_kwargs) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, **dumps_kwargs))
