"""Modality-aware auto-interp of SAE latents: evidence (text windows, 1-second audio clips),
labels (offline from the corpus annotations, or an audio chat model) and detection scores.

Stages, one module each: `stats` (one SAE pass over a held-out store), `examples` (what to show
and what to score on), `evidence` (files), `attributes` (ground-truth predicates), `explain`,
`score`, `report`; `run` ties them together (`python -m autointerp.run --layer 12`).
"""
