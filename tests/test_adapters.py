"""Real-model adapters on tiny random-weight replicas written with the real key names and layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from interp.models import registry
from interp.models.cosyvoice3 import CosyVoice3Backbone, load_cosyvoice3_lm
from interp.models.editing_lm import EditingLMBackbone, EditingLMConfig, load_editing_lm
from interp.models.generate import SamplingConfig
from interp.models.tinycosy import SPEECH_EXTRA, TinyCosy, TinyCosyConfig
from tests.replicas import (
    CODES,
    COSY_QWEN_JSON,
    QWEN_JSON,
    REAL_KEYS,
    tiny_text_tokenizer,
    write_cosyvoice3,
)


@pytest.fixture(scope="module")
def cosy_dir(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("cosyvoice3")
    return folder, write_cosyvoice3(folder, tokenizer=True)


@pytest.fixture(scope="module")
def editing_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("editing_lm")
    torch.manual_seed(1)
    cfg = Qwen2Config(**{**QWEN_JSON, "eos_token_id": 299}, speech_token_offset=100,
                      n_speech_tokens=CODES, source_start_id=297, target_start_id=298)
    Qwen2ForCausalLM(cfg).save_pretrained(folder)
    tiny_text_tokenizer().save_pretrained(folder)
    return folder


def test_cosyvoice3_keys_round_trip_and_logits(cosy_dir):
    folder, state = cosy_dir
    bb = registry.load_backbone(f"cosyvoice3:{folder}", device="cpu")
    assert isinstance(bb, CosyVoice3Backbone) and bb.name == "cosyvoice3"
    loaded = bb.model.state_dict()
    assert set(loaded) == set(state) and all(k in loaded for k in REAL_KEYS)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert (bb.n_layers, bb.d_model, bb.model.sos, bb.model.task_id) == (2, 32, CODES, CODES + 2)
    assert bb.model.llm.model.config.rope_parameters["rope_theta"] == 1e6
    # The speech logits are the HF Qwen2's last hidden state through llm_decoder.
    qwen = Qwen2ForCausalLM(Qwen2Config(**COSY_QWEN_JSON))
    qwen.load_state_dict({k[len("llm.model."):]: v for k, v in state.items()
                          if k.startswith("llm.model.")})
    text, prompt, target = torch.tensor([5, 6, 7]), torch.tensor([1, 2]), torch.tensor([3, 4, 5])
    out = bb.teacher_forced(text, prompt, target)
    assert out.logits.shape == (1 + 3 + 1 + 2 + 3, CODES + SPEECH_EXTRA)
    assert len(out.modality) == out.logits.shape[0] and out.target_start == 6
    embeds = torch.cat([state["speech_embedding.weight"][[CODES]],
                        state["llm.model.model.embed_tokens.weight"][text],
                        state["speech_embedding.weight"][[CODES + 2, 1, 2, 3, 4, 5]]])[None]
    with torch.no_grad():
        hidden = qwen.model(inputs_embeds=embeds).last_hidden_state[0]
    assert torch.allclose(out.logits, hidden @ state["llm_decoder.weight"].T, atol=1e-5)


def test_cosyvoice3_generates_and_encodes_text(cosy_dir):
    bb = CosyVoice3Backbone.load(cosy_dir[0])
    ids, n_text = bb.encode_text("the red lamp", instruction="Please speak slowly.")
    endofprompt = bb.tokenizer.convert_tokens_to_ids("<|endofprompt|>")
    assert endofprompt in ids.tolist() and int(ids.max()) < COSY_QWEN_JSON["vocab_size"]
    assert len(bb.tokenizer.encode("[laughter]", add_special_tokens=False)) == 1
    a = bb.generate(ids, torch.tensor([1, 2, 3]), n_text=2, sampling=SamplingConfig(seed=3))
    b = bb.generate(ids, torch.tensor([1, 2, 3]), n_text=2, sampling=SamplingConfig(seed=3))
    assert a == b and 4 <= len(a) <= 40 and all(0 <= t < CODES for t in a)
    assert not bb.can_render() and bb.render_missing()
    with pytest.raises(RuntimeError, match="cannot render waveforms"):
        bb.render(a, "prompt.wav")


def test_cosyvoice3_untied_head_and_top_level_config(tmp_path):
    state = write_cosyvoice3(tmp_path, lm_head=False, config_at_top=True)
    model = load_cosyvoice3_lm(tmp_path)
    assert torch.equal(model.llm.model.lm_head.weight, state["llm.model.model.embed_tokens.weight"])
    with pytest.raises(ValueError, match="foreign Qwen2 config"):
        model.save(tmp_path / "out")


def test_cosyvoice3_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cosyvoice3_lm(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no llm.pt in"):
        load_cosyvoice3_lm(tmp_path)
    state = write_cosyvoice3(tmp_path / "a")
    bad = {k.replace("llm.model.model.layers.0", "llm.model.layers.0"): v for k, v in state.items()}
    torch.save(bad, tmp_path / "a" / "llm.pt")
    with pytest.raises(ValueError, match=r"missing 12 keys \(llm\.model\.model\.layers\.0\.input_"
                                         r".*unexpected 12 \(llm\.model\.layers\.0\."):
        load_cosyvoice3_lm(tmp_path / "a")
    write_cosyvoice3(tmp_path / "b")
    cfg_path = tmp_path / "b" / "CosyVoice-BlankEN" / "config.json"
    cfg_path.write_text(json.dumps({**COSY_QWEN_JSON, "intermediate_size": 48}))
    with pytest.raises(ValueError, match=r"other shapes .*mlp\.\w+_proj\.weight \(64, 32\) vs "
                                         r"\(48, 32\)"):
        load_cosyvoice3_lm(tmp_path / "b")
    cfg_path.unlink()
    with pytest.raises(FileNotFoundError, match="no Qwen2 config"):
        load_cosyvoice3_lm(tmp_path / "b")


def test_editing_lm_from_config_keys(editing_dir):
    bb = registry.load_backbone(f"editing-lm:{editing_dir}", device="cpu")
    assert isinstance(bb, EditingLMBackbone) and (bb.n_layers, bb.d_model) == (2, 32)
    assert "blocks.1.hook_mlp_out" in bb.hook_points() and bb.model.layers_path == "model.layers"
    assert bb.model.cfg.stop_ids == (299,) and bb.model.cfg.speech_codes == CODES
    text, source, target = bb.encode_text("make it louder")[0], torch.tensor([1, 2, 3]), torch.tensor(
        [4, 5])
    out = bb.teacher_forced(text, source, target)
    assert out.logits.shape == (len(text) + 1 + 3 + 1 + 2, CODES + 1)
    assert len(out.modality) == out.logits.shape[0] and out.modality[len(text)] == "special"
    assert out.modality[out.target_start + 1] == "speech" and out.target_start == len(text) + 4
    ids = torch.cat([text, torch.tensor([297, 101, 102, 103, 298, 104, 105])])
    with torch.no_grad():
        full = bb.model.lm(input_ids=ids[None]).logits[0]
    keep = list(range(100, 100 + CODES)) + [299]
    assert torch.allclose(out.logits, full[:, keep], atol=1e-5)
    a = bb.edit(text, source, SamplingConfig(seed=2, min_ratio=1, max_ratio=4))
    assert a == bb.edit(text, source, SamplingConfig(seed=2, min_ratio=1, max_ratio=4))
    assert 3 <= len(a) <= 12 and all(0 <= t < CODES for t in a)


def test_editing_lm_flags_and_errors(tmp_path, editing_dir):
    bb = load_editing_lm(editing_dir, EditingLMConfig(speech_token_offset=10, n_speech_tokens=50,
                                                      stop_ids=(2, 3)))
    assert (bb.model.cfg.speech_token_offset, bb.model.cfg.speech_codes) == (10, 50)
    assert bb.teacher_forced(torch.tensor([5]), torch.tensor([1]), torch.tensor([2])).logits.shape[
        -1] == 52
    plain = tmp_path / "plain"
    Qwen2ForCausalLM(Qwen2Config(**QWEN_JSON)).save_pretrained(plain)
    with pytest.raises(ValueError, match="speech token range unknown"):
        load_editing_lm(plain)
    with pytest.raises(ValueError, match="do not fit the vocabulary"):
        load_editing_lm(plain, EditingLMConfig(speech_token_offset=280, n_speech_tokens=64))
    with pytest.raises(ValueError, match="cannot find the decoder layers of Qwen2ForCausalLM"):
        load_editing_lm(editing_dir, EditingLMConfig(layers_path="model.blocks"))
    with pytest.raises(ValueError, match="unknown editing-lm options"):
        registry.load_backbone(f"editing-lm:{editing_dir}", device="cpu", offset=3)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_editing_lm(tmp_path)


def test_registry_names_and_directories(tmp_path, monkeypatch, cosy_dir, editing_dir):
    with pytest.raises(ValueError, match=r"unknown backbone 'gpt5'.*cosyvoice3:<dir>.*editing-lm"):
        registry.load_backbone("gpt5", device="cpu")
    with pytest.raises(ValueError, match="cosyvoice3 needs a local model directory"):
        registry.load_backbone("cosyvoice3", device="cpu")
    tiny = TinyCosy(TinyCosyConfig(n_layers=2, hidden=32, n_heads=2, n_kv_heads=1, mlp=64,
                                   text_vocab=100, speech_codes=CODES))
    tiny.save(tmp_path / "tc")
    monkeypatch.setattr(registry, "TINYCOSY_DIR", tmp_path / "tc")
    assert registry.load_backbone(device="cpu").name == "tinycosy"
    assert registry.load_backbone(f"tinycosy:{tmp_path / 'tc'}", device="cpu").n_layers == 2
    assert registry.load_backbone(str(tmp_path / "tc"), device="cpu").name == "tinycosy"
    assert registry.load_backbone(str(cosy_dir[0]), device="cpu").name == "cosyvoice3"
    assert registry.load_backbone(str(editing_dir), device="cpu").name == "editing-lm"


def test_hooks_capture_through_adapters(cosy_dir, editing_dir):
    from interp.hooks.capture import run_with_cache

    for bb in (CosyVoice3Backbone.load(cosy_dir[0]), load_editing_lm(editing_dir)):
        out, cache = run_with_cache(bb, torch.tensor([5, 6]), torch.tensor([1, 2, 3]),
                                    torch.tensor([4]), ["blocks.1.hook_resid_post",
                                                        "blocks.0.hook_mlp_out"])
        assert cache["blocks.1.hook_resid_post"].shape == (1, out.logits.shape[0], 32)
        assert cache["blocks.0.hook_mlp_out"].shape == (1, len(out.modality), 32)
