"""The activation store: sharded, memory-mappable residual streams with per-position metadata."""

from interp.store.reader import ActivationStore, modality_mask
from interp.store.writer import MODALITY_CODES, StoreSpec, fingerprint, write_store

__all__ = ["MODALITY_CODES", "ActivationStore", "StoreSpec", "fingerprint", "modality_mask", "write_store"]
