"""The shared fixtures that later stages build on: a tiny SAE and a held-out activation store."""

import torch

from interp.store import ActivationStore
from sae.io import load_sae


def test_tiny_sae_encodes_heldout_activations(tiny_sae, tiny_heldout_store):
    store = ActivationStore(tiny_heldout_store, 1)
    sae = load_sae(tiny_sae)
    x = torch.from_numpy(store.all())
    z = sae.encode(x)
    assert z.shape == (len(store), 64) and len(store) > 100
    assert 0 < (z > 0).float().sum(1).mean() < 64
