"""Tiny random-weight replicas of real model directories, written with the real key names and
file layout (CosyVoice3: `llm.pt` + `CosyVoice-BlankEN/` + `speech_tokenizer_v3.onnx`), shared
by the adapter tests and the two-backbone pipeline test."""

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
# CosyVoice-BlankEN's config: Qwen2's vocabulary (here 280 BPE ids + its 3 specials) plus the 278
# specials CosyVoice3 adds must fit the embedding (151_924 of 151_936 ids in the real one).
COSY_QWEN_JSON = {**QWEN_JSON, "vocab_size": 576}
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # Qwen2's, after its BPE ids
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


def write_qwen2_tokenizer(folder: Path) -> int:
    """Qwen2's tokenizer files as CosyVoice-BlankEN carries them — `vocab.json`, `merges.txt` and
    a `tokenizer_config.json` naming `Qwen2Tokenizer` with `<|endoftext|>`, `<|im_start|>`,
    `<|im_end|>` right after the BPE ids — over a tiny byte-level BPE. Returns the BPE's size."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=280,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["You are a helpful assistant.", "the red lamp is here"] * 5, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    bpe.model.save(str(folder))  # vocab.json + merges.txt
    n = bpe.get_vocab_size()
    flags = dict(lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "bos_token": None, "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": {str(n + i): {"content": t, **flags}
                                 for i, t in enumerate(QWEN_SPECIALS)},
        "additional_special_tokens": list(QWEN_SPECIALS[1:]), "eos_token": "<|endoftext|>",
        "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}))
    return n


def write_speech_tokenizer(path: Path, digits: int = 8, seed: int = 0) -> Path:
    """A tiny `speech_tokenizer_v3.onnx` with the real interface: inputs `feats` (batch, 128,
    frames) float32 and `feats_length` (batch,) int32, output `indices` (batch, tokens) int32.
    Two stride-2 convolutions (frames → ceil(frames / 4) tokens: 25 Hz, as the real encoder's
    subsampling) to `digits` channels, then FSQ as the real one quantises: tanh, round to
    {-1, 0, 1}, read as base-3 digits → ids in [0, 3**digits) (3**8 = 6561)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    hidden = 16
    weights = {
        "conv1.weight": rng.normal(0, 0.05, (hidden, 128, 3)), "conv1.bias": np.zeros(hidden),
        "conv2.weight": rng.normal(0, 0.3, (digits, hidden, 3)), "conv2.bias": np.zeros(digits),
        "fsq.powers": (3.0 ** np.arange(digits)).reshape(1, digits, 1), "fsq.one": np.ones(1)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "fsq.axis"))
    conv = dict(kernel_shape=[3], strides=[2], pads=[1, 1])
    nodes = [
        helper.make_node("Conv", ["feats", "conv1.weight", "conv1.bias"], ["h1"], **conv),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Conv", ["a1", "conv2.weight", "conv2.bias"], ["h2"], **conv),
        helper.make_node("Tanh", ["h2"], ["z"]),
        helper.make_node("Round", ["z"], ["q"]),
        helper.make_node("Add", ["q", "fsq.one"], ["d"]),
        helper.make_node("Mul", ["d", "fsq.powers"], ["w"]),
        helper.make_node("ReduceSum", ["w", "fsq.axis"], ["ids"], keepdims=0),
        helper.make_node("Cast", ["ids"], ["indices"], to=TensorProto.INT32),
    ]
    graph = helper.make_graph(
        nodes, "speech_tokenizer_v3_replica",
        [helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["batch", 128, "frames"]),
         helper.make_tensor_value_info("feats_length", TensorProto.INT32, ["batch"])],
        [helper.make_tensor_value_info("indices", TensorProto.INT32, ["batch", "tokens"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime too
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_cosyvoice3(folder: Path, *, lm_head: bool = True, tokenizer: bool = False,
                     config_at_top: bool = False, speech_tokenizer: bool = False
                     ) -> dict[str, torch.Tensor]:
    """llm.pt with CosyVoice3LM's keys, built from a bare HF Qwen2, not from TinyCosy; with
    `tokenizer`, CosyVoice-BlankEN's Qwen2 tokenizer files; with `speech_tokenizer`, a tiny
    `speech_tokenizer_v3.onnx` whose 27 codes fit the replica LM's 64 (the real one has 6561)."""
    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(Qwen2Config(**COSY_QWEN_JSON))
    state = {f"llm.model.{k}": v.clone() for k, v in qwen.state_dict().items()}
    if not lm_head:
        del state["llm.model.lm_head.weight"]
    state["speech_embedding.weight"] = torch.randn(CODES + SPEECH_EXTRA, 32)
    state["llm_decoder.weight"] = torch.randn(CODES + SPEECH_EXTRA, 32) * 0.2
    qwen_dir = folder / "CosyVoice-BlankEN"
    qwen_dir.mkdir(parents=True)
    (folder if config_at_top else qwen_dir).joinpath("config.json").write_text(
        json.dumps(COSY_QWEN_JSON))
    if tokenizer:
        write_qwen2_tokenizer(qwen_dir)
    if speech_tokenizer:
        write_speech_tokenizer(folder / "speech_tokenizer_v3.onnx", digits=3)
    torch.save({**state, "llm.model.model.rotary_emb.inv_freq": torch.ones(8)},
               folder / "llm.pt")  # an old transformers buffer, ignored
    return state
