"""The randomly initialised control model (interp.models.random_init)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from interp.models.random_init import RECORD, random_like
from interp.models.registry import load_backbone


def test_random_like_keeps_everything_but_the_weights(tmp_path, tiny_tinycosy):
    like = tiny_tinycosy[0]
    a = random_like(like, tmp_path / "a", seed=3)
    b = random_like(like, tmp_path / "b", seed=3)
    assert json.loads((a / "config.json").read_text()) == json.loads(
        (like / "config.json").read_text())
    assert (a / "tokenizer.json").read_bytes() == (like / "tokenizer.json").read_bytes()
    assert not (a / "train.json").exists() and json.loads((a / RECORD).read_text())["seed"] == 3
    trained, wa, wb = (load_file(str(d / "model.safetensors")) for d in (like, a, b))
    assert set(wa) == set(trained)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # seeded
    assert any(not torch.equal(wa[k], trained[k]) for k in wa)
    engine = load_backbone(str(a))  # every stage opens it as it opens the trained model
    assert engine.model.cfg == load_backbone(str(like)).model.cfg
    # the shipped model's codec pointer is relative (data/tinycosy → ../codec): the copy, made
    # anywhere, must still find that codec
    from interp.models.tinycosy_backbone import codec_dir_of

    shipped = random_like("data/tinycosy", tmp_path / "deep" / "shipped_like")
    assert codec_dir_of(shipped) == codec_dir_of(Path("data/tinycosy"))
    assert (codec_dir_of(shipped) / "codec.safetensors").exists()
    with pytest.raises(ValueError, match="another folder"):
        random_like(like, like)
    with pytest.raises(FileNotFoundError, match="no TinyCosy"):
        random_like(tmp_path / "nothing", tmp_path / "c")
