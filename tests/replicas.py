"""Tiny random-weight replicas of real model directories, written with the real key names and
file layout (CosyVoice3: `llm.pt` + `CosyVoice-BlankEN/`), shared by the adapter tests and the
two-backbone pipeline test."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from interp.models.tinycosy import SPEECH_EXTRA

CODES = 64  # CosyVoice3 has 6561; the +200 block of specials is kept
# A CosyVoice-BlankEN/config.json as transformers 4.x wrote Qwen2.5-0.5B's, shrunk.
QWEN_JSON = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 0,
    "eos_token_id": 1, "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
    "intermediate_size": 64, "max_position_embeddings": 512, "max_window_layers": 2,
    "model_type": "qwen2", "num_attention_heads": 2, "num_hidden_layers": 2,
    "num_key_value_heads": 1, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "sliding_window": 512, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.1", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 300,
}
REAL_KEYS = ("llm.model.model.embed_tokens.weight", "llm.model.model.layers.1.self_attn.q_proj.bias",
             "llm.model.model.layers.0.mlp.gate_proj.weight", "llm.model.model.norm.weight",
             "speech_embedding.weight", "llm_decoder.weight")


def tiny_text_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=280, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["You are a helpful assistant.", "the red lamp is here"] * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def write_cosyvoice3(folder: Path, *, lm_head: bool = True, tokenizer: bool = False,
                     config_at_top: bool = False) -> dict[str, torch.Tensor]:
    """llm.pt with CosyVoice3LM's keys, built from a bare HF Qwen2, not from TinyCosy."""
    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(Qwen2Config(**QWEN_JSON))
    state = {f"llm.model.{k}": v.clone() for k, v in qwen.state_dict().items()}
    if not lm_head:
        del state["llm.model.lm_head.weight"]
    state["speech_embedding.weight"] = torch.randn(CODES + SPEECH_EXTRA, 32)
    state["llm_decoder.weight"] = torch.randn(CODES + SPEECH_EXTRA, 32) * 0.2
    qwen_dir = folder / "CosyVoice-BlankEN"
    qwen_dir.mkdir(parents=True)
    (folder if config_at_top else qwen_dir).joinpath("config.json").write_text(
        json.dumps(QWEN_JSON))
    if tokenizer:
        tiny_text_tokenizer().save_pretrained(qwen_dir)
    torch.save({**state, "llm.model.model.rotary_emb.inv_freq": torch.ones(8)},
               folder / "llm.pt")  # an old transformers buffer, ignored
    return state
