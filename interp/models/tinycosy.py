"""TinyCosy: a small speech LM laid out exactly as CosyVoice3's LM.

CosyVoice3 wraps a HF `Qwen2ForCausalLM` as `llm.model`, embeds text with the Qwen2 token
embedding, and speech tokens (plus sos / eos / task_id / fill, at codes + 0..3 of a +200 block)
with `speech_embedding`; `llm_decoder` maps the last hidden state to speech-token logits. The
input sequence is `[sos] + text_embed(system + instruction <|endofprompt|> prompt_text + text) +
[task_id] + speech_embed(prompt tokens)`, then speech tokens until `eos`. Same names, same shapes
rule, small sizes — so hooks, SAEs and steering written against TinyCosy apply to CosyVoice3.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Model

from interp.atomic import atomic_save, atomic_write_text

SPEECH_EXTRA = 200  # CosyVoice3 reserves 200 ids after the codes for sos/eos/task_id/fill/...
# transformers 5.x renamed `past_key_values` to `cache`; support both.
_CACHE_ARG = ("cache" if "cache" in inspect.signature(Qwen2Model.forward).parameters
              else "past_key_values")
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class TinyCosyConfig:
    """Sizes of the backbone; 24 layers so that layer 12 is the middle, as in CosyVoice3."""

    n_layers: int = 24
    """decoder layers"""
    hidden: int = 128
    """residual width"""
    n_heads: int = 4
    """attention heads"""
    n_kv_heads: int = 2
    """key/value heads (grouped-query attention, as Qwen2)"""
    mlp: int = 512
    """MLP width"""
    text_vocab: int = 1024
    """text tokenizer vocabulary"""
    speech_codes: int = 512
    """speech codec codebook size"""
    max_positions: int = 2048
    """longest sequence (RoPE)"""

    def qwen2(self) -> Qwen2Config:
        return Qwen2Config(
            vocab_size=self.text_vocab, hidden_size=self.hidden, intermediate_size=self.mlp,
            num_hidden_layers=self.n_layers, num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads, max_position_embeddings=self.max_positions,
            rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=10000.0,
            attn_implementation="sdpa",
        )

    def to_dict(self) -> dict:
        return {"architecture": "tinycosy", **asdict(self)}


class Qwen2Encoder(nn.Module):
    """CosyVoice's wrapper: the HF model sits at `.model`, so keys read `llm.model.model.*`."""

    def __init__(self, config: Qwen2Config):
        super().__init__()
        self.model = Qwen2ForCausalLM(config)


class TinyCosy(nn.Module):
    """Speech-token LM. `forward` takes embeddings; `embed` builds them from token ids."""

    def __init__(self, cfg: TinyCosyConfig, qwen2: Qwen2Config | None = None):
        super().__init__()
        self.cfg = cfg
        self._foreign = qwen2 is not None  # built from someone else's Qwen2 config
        self.llm = Qwen2Encoder(qwen2 or cfg.qwen2())
        n_speech = cfg.speech_codes + SPEECH_EXTRA
        self.llm_decoder = nn.Linear(cfg.hidden, n_speech, bias=False)
        self.speech_embedding = nn.Embedding(n_speech, cfg.hidden)

    @classmethod
    def from_qwen2(cls, qwen2: Qwen2Config, speech_codes: int) -> TinyCosy:
        """The same layout around any Qwen2 config (e.g. CosyVoice3's Qwen2.5-0.5B), untrained.

        `cfg` mirrors the sizes; everything else (RoPE, norms, tying) comes from `qwen2`.
        """
        cfg = TinyCosyConfig(
            n_layers=qwen2.num_hidden_layers, hidden=qwen2.hidden_size,
            n_heads=qwen2.num_attention_heads, n_kv_heads=qwen2.num_key_value_heads,
            mlp=qwen2.intermediate_size, text_vocab=qwen2.vocab_size, speech_codes=speech_codes,
            max_positions=qwen2.max_position_embeddings)
        return cls(cfg, qwen2)

    # special speech ids, as CosyVoice3 numbers them
    @property
    def sos(self) -> int:
        return self.cfg.speech_codes

    @property
    def eos(self) -> int:
        return self.cfg.speech_codes + 1

    @property
    def task_id(self) -> int:
        return self.cfg.speech_codes + 2

    @property
    def layers(self) -> nn.ModuleList:
        return self.llm.model.model.layers

    @staticmethod
    def modality(n_text: int, n_prompt: int, n_target: int) -> list[str]:
        """Modality of each position of [sos] text [task_id] prompt target."""
        return ["special"] + ["text"] * n_text + ["special"] + ["speech"] * (n_prompt + n_target)

    def text_embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.model.model.embed_tokens(ids)

    def prefix(self, text_ids: torch.Tensor, prompt_tokens: torch.Tensor) -> torch.Tensor:
        """(T, D) embeddings of [sos] + text + [task_id] + prompt speech, for one sequence."""
        dev = self.speech_embedding.weight.device
        sos = self.speech_embedding(torch.tensor([self.sos], device=dev))
        task = self.speech_embedding(torch.tensor([self.task_id], device=dev))
        return torch.cat([sos, self.text_embed(text_ids.to(dev)), task,
                          self.speech_embedding(prompt_tokens.to(dev))])

    def forward(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_values=None, use_cache: bool = False,
                position_ids: torch.Tensor | None = None):
        """(B, T, D) embeddings → ((B, T, n_speech) speech logits, past_key_values).

        `position_ids` (B, T): each row's rotary positions (batched generation, where rows of
        different lengths share one cache); by default the cache length onwards, as in HF."""
        out = self.llm.model.model(inputs_embeds=embeds, attention_mask=attention_mask,
                                   position_ids=position_ids, use_cache=use_cache,
                                   **{_CACHE_ARG: past_key_values})
        return self.llm_decoder(out.last_hidden_state), getattr(out, _CACHE_ARG, None)

    def speech_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, D) residual → (…, n_speech) speech logits: final RMSNorm, then `llm_decoder`."""
        return self.llm_decoder(self.llm.model.model.norm(hidden))

    def with_text_vocab(self, n: int) -> TinyCosy:
        """A copy with every weight but the text embedding, which is new, random, `n` rows, at
        the old rows' mean norm (so that text enters the residual at the scale the layers know):
        for continuing a model with another text front end."""
        new = TinyCosy(replace(self.cfg, text_vocab=n)).to(self.speech_embedding.weight.device)
        keep = {k: v for k, v in self.state_dict().items()
                if k not in ("llm.model.model.embed_tokens.weight", "llm.model.lm_head.weight")}
        new.load_state_dict(keep, strict=False)
        with torch.no_grad():
            old = self.llm.model.model.embed_tokens.weight
            emb = new.llm.model.model.embed_tokens.weight
            emb.mul_(old.norm(dim=-1).mean() / emb.norm(dim=-1).mean())
        new.llm.model.tie_weights()
        return new

    # -- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        if self._foreign:
            raise ValueError("this model was built from a foreign Qwen2 config, which TinyCosy's "
                             "config.json cannot record; save its state_dict with torch.save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                 if k != "llm.model.lm_head.weight"}  # tied to embed_tokens
        atomic_save(folder / WEIGHTS, lambda p: save_file(state, str(p)))
        atomic_write_text(folder / CONFIG, json.dumps(self.cfg.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> TinyCosy:
        folder = Path(folder)
        if not (folder / WEIGHTS).exists():
            raise FileNotFoundError(f"no TinyCosy checkpoint in {folder} (expected {WEIGHTS}); "
                                    "train one with `python -m interp.models.train`")
        cfg_dict = read_config(folder / CONFIG)
        if cfg_dict.pop("architecture", "tinycosy") != "tinycosy":
            raise ValueError(f"{folder} holds another architecture, not TinyCosy")
        try:
            model = cls(TinyCosyConfig(**cfg_dict))
        except TypeError as exc:
            raise ValueError(f"{folder / CONFIG} is not a TinyCosy config ({exc})") from None
        try:
            state = load_file(str(folder / WEIGHTS))
        except Exception as exc:  # SafetensorError (a bare Exception subclass), OSError
            raise ValueError(f"{folder / WEIGHTS} is corrupt or truncated ({str(exc)[:120]}); "
                             "restore it or export the model again") from None
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError:  # tensors of other shapes than the config says
            raise ValueError(f"{folder / WEIGHTS} does not match {folder / CONFIG} (tensors of "
                             "other shapes); export the model again") from None
        if unexpected or [k for k in missing if k != "llm.model.lm_head.weight"]:
            raise ValueError(f"checkpoint {folder} does not match TinyCosy: missing {missing}, "
                             f"unexpected {unexpected}")
        model.llm.model.tie_weights()
        return model.to(device).eval()


def read_config(path: Path) -> dict:
    """A model's config.json, or one line naming the file when it is missing or not JSON."""
    if not path.exists():
        raise FileNotFoundError(f"no {path.name} next to the weights in {path.parent}")
    try:
        cfg = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is corrupt or truncated ({exc}); restore it or export the "
                         "model again") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} is not a config object")
    return cfg
