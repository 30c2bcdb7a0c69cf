"""The editing experiment's items for the steering engine (`steering.experiment`): an edit pair's
source speech with its transcript, asked with the pair's instruction or with none, each output
measured against the source by the operation's rules (`interp.edit.evaluate.judge_one`).

Methods compose the engine's two axes: `instruct` asks, `steer` edits the target's SAE latents,
`instruct+steer` does both, `random_latents` / `random_direction` are the controls. For
remove_laughter every latent edit becomes an ablation (the latents set to 0, strength-free) and
there is no random direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from interp.edit.evaluate import judge_one
from interp.edit.evaluate import measure as edit_reading
from interp.edit.model import EDIT_SAMPLING
from interp.models.backbone import Backbone, Request
from interp.models.generate import SamplingConfig
from steering.experiment import Unit, read_rows
from steering.methods import Method

EDIT_METHODS: dict[str, Method] = {m.name: m for m in (
    Method("none"), Method("instruct", ask=True), Method("steer", edit="sae"),
    Method("instruct+steer", ask=True, edit="sae"),
    Method("random_latents", edit="random_latents"),
    Method("random_direction", edit="random_direction"))}
METHODS = tuple(EDIT_METHODS)
UNSTEERED = tuple(n for n, m in EDIT_METHODS.items() if not m.edit)
# operation → (steering.select concept, target or None for the pair's target gender)
TARGETS: dict[str, tuple[str, str | None]] = {
    "gender": ("gender", None), "faster": ("rate", "fast"), "slower": ("rate", "slow"),
    "add_laughter": ("laughter", "laughter"), "remove_laughter": ("laughter", "laughter")}
ABLATED = ("remove_laughter",)  # operations whose target's latents are ablated, not pushed up


def methods_for(op: str) -> tuple[Method, ...]:
    if op not in ABLATED:
        return tuple(EDIT_METHODS.values())
    return tuple(replace(m, ablate=True) if m.edit else m for m in EDIT_METHODS.values()
                 if m.edit != "random_direction")


def target_of(pair: dict) -> str:
    return TARGETS[pair["operation"]][1] or pair["target_gender"]


def unit_key(pair_id: str, method: str, strength: float | None) -> str:
    """A row's identity: a steered output's strength is part of it."""
    return f"{pair_id}|{method}" if strength is None else f"{pair_id}|{method}|s{strength:g}"


def row_strength(r: dict) -> float | None:
    """The strength a row was made at (rows of older runs record one for every method)."""
    s = r.get("strength")
    return None if s is None or r["method"] in UNSTEERED or r["operation"] in ABLATED \
        else float(s)


def read_edit_rows(out: Path) -> dict[str, dict]:
    """Finished rows by `unit_key`; rows written before keys carried the strength are re-keyed
    by the strength they record."""
    done = {}
    for key, r in read_rows(out).items():
        s = row_strength(r)
        done[unit_key(r["pair_id"], r["method"], s) if key.count("|") == 1 else key] = r
    return done


class PairSource:
    """A pair's source speech, loaded, tokenized and measured once and only when first needed
    (a resumed run with every output of a pair never touches its source)."""

    def __init__(self, backbone: Backbone, load: Callable[[], np.ndarray], listener=None,
                 text: str = ""):
        self.backbone, self.load, self.listener, self.text = backbone, load, listener, text

    @cached_property
    def audio(self) -> np.ndarray:
        return self.load()

    @cached_property
    def tokens(self) -> np.ndarray:
        return np.asarray(self.backbone.speech_tokens(self.audio), dtype=np.int64)

    @cached_property
    def reading(self) -> dict:
        return edit_reading(self.listener, self.audio, self.text)


@dataclass(frozen=True, eq=False)
class EditItem:
    """One edit pair: its source is the prompt speech, its transcript (and, when asked, its
    instruction) the text; outputs are measured and judged against the source."""

    pair: dict
    source: PairSource
    index: int = 0
    sampling: ClassVar[SamplingConfig] = EDIT_SAMPLING

    @property
    def pair_id(self) -> str:
        return self.pair["pair_id"]

    @property
    def seed_offset(self) -> int:
        return int(self.pair_id.lstrip("p") or self.index)

    def key(self, unit: Unit) -> str:
        return unit_key(self.pair_id, unit.method.name, unit.strength)

    def wav(self, unit: Unit) -> Path:
        at = "" if unit.strength is None else f"s{unit.strength:g}"
        return Path("wav") / unit.method.name / at / f"{self.pair_id}.wav"

    def fields(self, unit: Unit) -> dict:
        return {"pair_id": self.pair_id, "operation": self.pair["operation"],
                "target": unit.target, "method": unit.method.name, "strength": unit.strength}

    def request(self, backbone: Backbone, unit: Unit, seed: int) -> Request:
        # TinyEdit knows no "keep it as it is" instruction: unasked is no instruction at all,
        # TinyCosy's own layout (the transcript alone), which re-speaks the source
        instruction = self.pair["instruction"] if unit.method.ask else None
        ids, _ = backbone.encode_text(self.pair["text_plain"], instruction=instruction)
        src = torch.from_numpy(self.source.tokens)
        # the output's length is bounded by the source's, as `edit(ids, source)` bounds it
        return Request(ids, src, len(src), backbone.model.modality(len(ids), len(src), 0))

    def render(self, backbone: Backbone, tokens: list[int]) -> np.ndarray:
        return backbone.render(tokens)

    def measure(self, audio: np.ndarray) -> dict:
        m = edit_reading(self.source.listener, audio, self.pair["text_plain"])
        return {**m, **judge_one(self.pair, self.source.reading, m)}


def plan_edit_units(items: list[EditItem], strength: Callable[[str], float]) -> list[Unit]:
    """Every item by every method of its operation; a steered output at the operation's
    strength, an unsteered or ablated one at none."""
    return [Unit(it, m, target_of(it.pair), None if m.strength_free
                 else strength(it.pair["operation"]))
            for it in items for m in methods_for(it.pair["operation"])]
