"""Where the committed artifacts live, independent of the working directory."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
CODEC_DIR = DATA / "codec"
TINYCOSY_DIR = DATA / "tinycosy"
