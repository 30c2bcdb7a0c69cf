"""Where the committed artifacts live, independent of the working directory."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
CODEC_DIR = DATA / "codec"
TINYCOSY_DIR = DATA / "tinycosy"
SAE_DIR = DATA / "sae"
CONCEPTS_FILE = "concepts.json"  # the steering selection beside an SAE: `python -m steering.select`


def default_sae(layer: int) -> Path:
    """The layer's SAE of the shipped TinyCosy: a locally trained `runs/tinycosy/sae/layer_L`
    when there is one, else the shipped `data/sae/layer_L` (only layer 12 ships)."""
    local = Path("runs/tinycosy/sae") / f"layer_{layer}"
    return local if (local / "cfg.json").exists() else SAE_DIR / f"layer_{layer}"
