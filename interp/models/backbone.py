"""The interface every backbone offers the workbench (TinyCosy, CosyVoice3, editing LMs).

A backbone knows its depth and width, names its hook points in TransformerLens grammar, runs a
teacher-forced forward pass that says which modality each position has, and generates speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from interp.hooks.points import hook_names
from interp.models.generate import SamplingConfig, generate_tokens
from interp.models.tinycosy import TinyCosy


@dataclass(frozen=True)
class TeacherForced:
    """Output of a teacher-forced pass over one sequence."""

    logits: torch.Tensor  # (T, n_speech)
    modality: list[str]  # (T,) "text" | "speech" | "special"
    target_start: int  # first position whose next token is a target speech token


class Backbone(Protocol):
    name: str
    n_layers: int
    d_model: int
    model: torch.nn.Module

    def hook_points(self) -> list[str]: ...

    def teacher_forced(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                       target: torch.Tensor) -> TeacherForced: ...

    def generate(self, text_ids: torch.Tensor, prompt: torch.Tensor, n_text: int,
                 sampling: SamplingConfig | None = None) -> list[int]: ...


class SpeechLMBackbone:
    """What every speech-LM backbone shares: its module offers `prefix(text, prompt)`,
    `speech_embedding(tokens)`, `modality(n_text, n_prompt, n_target)` and
    `forward(embeds) -> (logits, cache)`, so hooks, teacher forcing and generation are common."""

    def __init__(self, model: torch.nn.Module, name: str, n_layers: int, d_model: int):
        self.model, self.name, self.n_layers, self.d_model = model, name, n_layers, d_model

    def hook_points(self) -> list[str]:
        return hook_names(self.n_layers)

    @torch.no_grad()
    def teacher_forced(self, text_ids: torch.Tensor, prompt: torch.Tensor,
                       target: torch.Tensor) -> TeacherForced:
        pre = self.model.prefix(text_ids, prompt)
        embeds = torch.cat([pre, self.model.speech_embedding(target.to(pre.device))])[None]
        logits, _ = self.model(embeds)
        return TeacherForced(logits[0], self.model.modality(len(text_ids), len(prompt),
                                                            len(target)), len(pre) - 1)

    def generate(self, text_ids: torch.Tensor, prompt: torch.Tensor, n_text: int,
                 sampling: SamplingConfig | None = None) -> list[int]:
        return generate_tokens(self.model, text_ids, prompt, n_text, sampling)


class TinyCosyBackbone(SpeechLMBackbone):
    """TinyCosy (or CosyVoice3's LM, same layout) behind the `Backbone` interface."""

    def __init__(self, model: TinyCosy, name: str = "tinycosy"):
        super().__init__(model, name, model.cfg.n_layers, model.cfg.hidden)
