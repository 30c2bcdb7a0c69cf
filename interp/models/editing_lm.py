"""Any local `transformers` causal LM as an audio-editing backbone.

An audio-editing LM reads an instruction (text ids) and the source speech, then writes the edited
speech, with speech tokens held in a contiguous block of its vocabulary: speech token j is
vocabulary id `speech_token_offset + j`, for j < `n_speech_tokens`. The sequence is

    instruction ids + [source_start_id] + source speech + [target_start_id] + edited speech

(the bracketed ids only when set), and generation stops at any of `stop_ids` (by default the
config's `eos_token_id`). The layout comes from flags or, when unset, from the same keys in the
model's `config.json`. Speech logits are the LM's own logits at the speech ids followed by the stop
ids, so `interp.models.generate` samples from it exactly as from TinyCosy.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from interp.models.backbone import SpeechLMBackbone
from interp.models.generate import SamplingConfig

log = logging.getLogger(__name__)

LAYER_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "transformer.layers",
               "gpt_neox.layers")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
EDIT_SAMPLING = SamplingConfig(min_ratio=0.5, max_ratio=2.0)  # edited length vs source length


@dataclass(frozen=True)
class EditingLMConfig:
    """Where speech lives in the vocabulary; a field left unset is read from `config.json`."""

    speech_token_offset: int | None = None
    """vocabulary id of speech token 0 (config.json key `speech_token_offset`)"""
    n_speech_tokens: int | None = None
    """how many speech tokens, at ids offset … offset + n - 1 (key `n_speech_tokens`)"""
    source_start_id: int | None = None
    """id between the instruction and the source speech, if any (key `source_start_id`)"""
    target_start_id: int | None = None
    """id between the source and the edited speech, if any (key `target_start_id`)"""
    stop_ids: tuple[int, ...] | None = None
    """ids that end the edited speech (key `stop_ids`; default the config's eos_token_id)"""
    layers_path: str | None = None
    """dotted path of the decoder layers inside the causal LM, e.g. `model.layers`"""
    dtype: str = "float32"
    """weights are loaded in this torch dtype"""


@dataclass(frozen=True)
class SpeechLayout:
    """The resolved layout; `speech_codes` is what `generate_tokens` reads."""

    speech_codes: int
    speech_token_offset: int
    source_start_id: int | None
    target_start_id: int | None
    stop_ids: tuple[int, ...]


def resolve_layout(cfg: EditingLMConfig, hf_config, vocab: int) -> SpeechLayout:
    """Flags first, then config.json keys; clear errors for what is missing or out of range."""
    def pick(name: str):
        flag = getattr(cfg, name)
        return flag if flag is not None else getattr(hf_config, name, None)

    offset, n = pick("speech_token_offset"), pick("n_speech_tokens")
    if offset is None or n is None:
        raise ValueError("speech token range unknown: give speech_token_offset and "
                         "n_speech_tokens (flags, or keys of the model's config.json)")
    if offset < 0 or n <= 0 or offset + n > vocab:
        raise ValueError(f"speech tokens {offset}…{offset + n - 1} do not fit the vocabulary "
                         f"of {vocab} ids")
    stops = pick("stop_ids")
    if stops is None:
        stops = getattr(hf_config, "eos_token_id", None)
    stops = tuple([stops] if isinstance(stops, int) else stops or ())
    if not stops:
        raise ValueError("no stop id: give stop_ids (the config has no eos_token_id)")
    specials = [i for i in (*stops, pick("source_start_id"), pick("target_start_id"))
                if i is not None]
    bad = [i for i in specials if not 0 <= i < vocab or offset <= i < offset + n]
    if bad:
        raise ValueError(f"special ids {bad} lie outside the vocabulary ({vocab}) or inside the "
                         f"speech range {offset}…{offset + n - 1}")
    return SpeechLayout(n, offset, pick("source_start_id"), pick("target_start_id"), stops)


def find_layers(lm: nn.Module, path: str | None = None) -> str:
    """The dotted path of the decoder layers (an nn.ModuleList) inside `lm`."""
    for candidate in ([path] if path else LAYER_PATHS):
        obj = lm
        for part in candidate.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return candidate
    looked = path or ", ".join(LAYER_PATHS)
    raise ValueError(f"cannot find the decoder layers of {type(lm).__name__} (looked for "
                     f"{looked}); pass layers_path, e.g. model.layers")


class EditingLM(nn.Module):
    """A causal LM with TinyCosy's calling convention (prefix, speech_embedding, forward)."""

    def __init__(self, lm: nn.Module, layout: SpeechLayout, layers_path: str):
        super().__init__()
        self.lm, self.cfg, self.layers_path = lm, layout, layers_path
        params = inspect.signature(lm.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        ids = list(range(layout.speech_token_offset,
                         layout.speech_token_offset + layout.speech_codes)) + list(layout.stop_ids)
        self.register_buffer("vocab_ids", torch.tensor(ids), persistent=False)

    @property
    def layers(self) -> nn.ModuleList:
        obj = self.lm
        for part in self.layers_path.split("."):
            obj = getattr(obj, part)
        return obj

    @property
    def device(self) -> torch.device:
        return self.vocab_ids.device

    @property
    def eos(self) -> int:
        """Index of the first stop id among the speech logits (they follow the speech ids)."""
        return self.cfg.speech_codes

    def speech_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, D) residual → speech-then-stop logits through the LM's final norm and head."""
        inner = getattr(self.lm, getattr(self.lm, "base_model_prefix", "model"), self.lm)
        norm = getattr(inner, "norm", None) or getattr(inner, "final_layer_norm", None)
        h = norm(hidden) if norm is not None else hidden
        return self.lm.get_output_embeddings()(h)[..., self.vocab_ids]

    def speech_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """(…,) speech tokens → (…, D) input embeddings of their vocabulary ids."""
        return self.lm.get_input_embeddings()(tokens.to(self.device) + self.cfg.speech_token_offset)

    def prefix(self, text_ids: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """(T, D) embeddings of instruction + [source_start] + source + [target_start]."""
        lay, dev = self.cfg, self.device
        parts = [text_ids.to(dev)]
        if lay.source_start_id is not None:
            parts.append(torch.tensor([lay.source_start_id], device=dev))
        parts.append(prompt.to(dev) + lay.speech_token_offset)
        if lay.target_start_id is not None:
            parts.append(torch.tensor([lay.target_start_id], device=dev))
        return self.lm.get_input_embeddings()(torch.cat(parts).long())

    def forward(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_values=None, use_cache: bool = False):
        """(B, T, D) → ((B, T, n_speech + n_stop) speech-then-stop logits, cache)."""
        out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=use_cache,
                      **{self._cache_arg: past_key_values})
        cache = getattr(out, self._cache_arg, None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        return out.logits[..., self.vocab_ids], cache

    def modality(self, n_text: int, n_source: int, n_target: int) -> list[str]:
        lay = self.cfg
        return (["text"] * n_text + ["special"] * (lay.source_start_id is not None)
                + ["speech"] * n_source + ["special"] * (lay.target_start_id is not None)
                + ["speech"] * n_target)


class EditingLMBackbone(SpeechLMBackbone):
    """A local causal LM behind the `Backbone` interface: instruction + source → edited speech."""

    def __init__(self, model: EditingLM, name: str = "editing-lm", tokenizer=None,
                 spec: str | None = None, weights: tuple[Path, ...] = ()):
        super().__init__(model, name, len(model.layers),
                         model.lm.get_input_embeddings().embedding_dim, spec, weights)
        self.tokenizer = tokenizer

    def edit(self, text_ids: torch.Tensor, source: torch.Tensor,
             sampling: SamplingConfig | None = None) -> list[int]:
        """Edited speech with length bounds relative to the source (0.5–2× by default)."""
        return self.generate(text_ids, source, len(source), sampling or EDIT_SAMPLING)

    def encode_text(self, text: str, prompt_text: str = "",
                    instruction: str | None = None) -> tuple[torch.Tensor, int]:
        """(ids, n) of the edit instruction: `instruction` when given, else `text`; an editing
        LM has no prompt text, the source speech is its prompt."""
        if self.tokenizer is None:
            raise ValueError("this model dir has no text tokenizer; give instruction ids")
        ids = self.tokenizer.encode(instruction or text, add_special_tokens=False)
        return torch.tensor(ids), len(ids)

    def token_texts(self, ids: list[int]) -> list[str]:
        if self.tokenizer is None:
            return super().token_texts(ids)
        return [self.tokenizer.decode([int(i)]) for i in ids]


def load_editing_lm(model_dir: str | Path, cfg: EditingLMConfig | None = None,
                    device: str | torch.device = "cpu") -> EditingLMBackbone:
    """A `transformers` causal LM dir (config.json + weights), local files only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg, model_dir = cfg or EditingLMConfig(), Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"editing LM dir {model_dir} does not exist")
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"no config.json in {model_dir}: not a transformers model dir")
    try:
        lm = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True,
                                                  dtype=getattr(torch, cfg.dtype))
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load a causal LM from {model_dir}: {first}") from err
    vocab = lm.get_input_embeddings().num_embeddings
    model = EditingLM(lm, resolve_layout(cfg, lm.config, vocab), find_layers(lm, cfg.layers_path))
    n_cfg = getattr(lm.config, "num_hidden_layers", None)
    if n_cfg is not None and n_cfg != len(model.layers):
        raise ValueError(f"{model.layers_path} has {len(model.layers)} layers but config.json "
                         f"says {n_cfg}; pass the right layers_path")
    tok = None
    if any((model_dir / f).exists() for f in TOKENIZER_FILES):
        tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    log.info("editing LM %s: %d layers, speech ids %d…%d", model_dir, len(model.layers),
             model.cfg.speech_token_offset, model.cfg.speech_token_offset + model.cfg.speech_codes - 1)
    weights = tuple(sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin")))
    return EditingLMBackbone(model.to(device).eval(), tokenizer=tok, spec=f"editing-lm:{model_dir}",
                             weights=weights)


def config_from_flags(**flags) -> EditingLMConfig:
    """An `EditingLMConfig` from keyword options (unknown names are a clear error)."""
    names = {f.name for f in fields(EditingLMConfig)}
    unknown = sorted(set(flags) - names)
    if unknown:
        raise ValueError(f"unknown editing-lm options {unknown}; valid: {sorted(names)}")
    if isinstance(flags.get("stop_ids"), (list, int)):
        stops = flags["stop_ids"]
        flags["stop_ids"] = tuple([stops] if isinstance(stops, int) else stops)
    return EditingLMConfig(**flags)
