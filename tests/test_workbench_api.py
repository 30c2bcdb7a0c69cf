"""The researcher's API (`workbench.Workbench`) on the tiny fixtures: tokens, capture while
speaking, SAEs checked against the model, steering edits that are exact at strength 0, and
things that display themselves in Jupyter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steering.select import save_selection, select_concept
from workbench import Audio, Readings, Steer, Workbench


@pytest.fixture(scope="module")
def wb(tiny_tinycosy, tiny_sae, tiny_store, tiny_corpus, tmp_path_factory):
    """The tiny TinyCosy with its layer-1 SAE and a concepts.json beside it."""
    import shutil

    root = tmp_path_factory.mktemp("saes")
    shutil.copytree(tiny_sae, root / "layer_1")
    from interp.store import ActivationStore
    from sae.io import load_sae

    sae, store = load_sae(tiny_sae), ActivationStore(tiny_store, 1)
    concepts = {c: save_selection(select_concept(sae, store, tiny_corpus, c, 3, None, 400))
                for c in ("gender", "laughter")}
    (root / "layer_1" / "concepts.json").write_text(json.dumps({"concepts": concepts}))
    return Workbench.load(str(tiny_tinycosy[0]), sae_dirs=(root,))


def test_tokens_voices_and_capture(wb):
    voice = wb.voices.index[0]
    req = wb.to_tokens("the red lamp", voice)
    assert req.modality[0] == "special" and "text" in req.modality and len(req.text_ids) > 3
    tokens, cache = wb.run_with_cache("the red lamp", voice, hooks=["blocks.1.hook_resid_post"])
    act = cache["blocks.1.hook_resid_post"]
    assert act.shape == (1, len(req.modality) + len(tokens), wb.backbone.d_model)
    with pytest.raises(ValueError, match="unknown hook point"):
        wb.run_with_cache("the red lamp", voice, hooks=["blocks.9.hook_resid_post"])


def test_generate_steer_listen(wb):
    voice = wb.voices.index[wb.voices.gender == "female"][0]
    plain = wb.generate("the red lamp is here", voice, seed=3)
    assert isinstance(plain, Audio) and plain.seconds > 0 and "<audio" in plain._repr_html_()
    assert np.asarray(plain).dtype == np.float32
    zero = wb.steer("male", strength=0.0, layer=1)
    assert isinstance(zero, Steer) and len(zero.selection.latents) == 3
    same = wb.generate("the red lamp is here", voice, steer=zero, seed=3)
    assert np.array_equal(np.asarray(same), np.asarray(plain))  # a zero edit is the identity
    strong = wb.generate("the red lamp is here", voice, seed=3,
                         steer=wb.steer("male", strength=50.0, layer=1, method="diffmeans"))
    assert not np.array_equal(np.asarray(strong)[: len(plain)], np.asarray(plain)[: len(strong)])
    shift = wb.steer("male", strength=0.0, layer=1, method="sae_shift")
    assert "shifted both ways" in repr(shift) and len(shift.selection.shift_latents) > 3
    assert np.array_equal(np.asarray(wb.generate("the red lamp is here", voice, steer=shift,
                                                 seed=3)), np.asarray(plain))
    readings = wb.listen(plain, "the red lamp is here")
    assert isinstance(readings, Readings) and "p_male" in readings and "wer" in readings
    assert "<table>" in readings._repr_html_()
    with pytest.raises(ValueError, match="no selection for 'slow'"):
        wb.steer("slow", layer=1)


def test_sae_is_checked_and_missing_layers_say_what_to_run(wb):
    sae = wb.sae(1)
    assert sae.cfg.d_in == wb.backbone.d_model
    with pytest.raises(FileNotFoundError, match="python -m sae.train"):
        wb.sae(0)
