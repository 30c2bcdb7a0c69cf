"""CosyVoice3's LM, read from a local model directory into TinyCosy's layout.

A CosyVoice3 model directory (e.g. `Fun-CosyVoice3-0.5B`) holds `llm.pt` — the state dict of
`CosyVoice3LM`: `llm.model.*` (the HF `Qwen2ForCausalLM`), `speech_embedding.weight` and
`llm_decoder.weight` (6561 codes + 200 specials, no bias) — and `CosyVoice-BlankEN/`, the Qwen2
config and text tokenizer the LM was built from. TinyCosy has the same module names, so the state
dict loads as is and hooks, SAEs and steering written against TinyCosy apply unchanged.

Text and speech tokenizers are CosyVoice3's own, read from the same dir without the `cosyvoice`
package (`interp.models.cosyvoice3_tokenizers`): Qwen2's tokenizer in `CosyVoice-BlankEN/` plus
CosyVoice3's 280 special tokens, and `speech_tokenizer_v3.onnx` through `onnxruntime`. Speech
tokens come from the LM with `interp.models.generate`. Waveforms need CosyVoice's own flow
and HiFT (`flow.pt`, `hift.pt`, `cosyvoice3.yaml`) and the `cosyvoice` package; without them the
adapter returns tokens only, and says so.
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen2Config

from interp.audio import SAMPLE_RATE
from interp.models.backbone import SpeechLMBackbone, files_fingerprint
from interp.models.cosyvoice3_tokenizers import (
    SPEECH_TOKENIZER_FILE,
    SpeechTokenizerV3,
    cosyvoice3_text_tokenizer,
    speech_tokenizer_missing,
)
from interp.models.text_tokenizer import SYSTEM_PROMPT
from interp.models.tinycosy import SPEECH_EXTRA, TinyCosy

log = logging.getLogger(__name__)

LLM_FILE = "llm.pt"
QWEN_DIR = "CosyVoice-BlankEN"
CONFIG = "config.json"
LM_HEAD = "llm.model.lm_head.weight"
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers older transformers saved; recomputed
RENDER_FILES = ("cosyvoice3.yaml", "flow.pt", "hift.pt")
COSYVOICE_INSTALL = ("install it: git clone --recursive https://github.com/FunAudioLLM/CosyVoice, "
                     "pip install -r CosyVoice/requirements.txt, and put CosyVoice and "
                     "CosyVoice/third_party/Matcha-TTS on PYTHONPATH")


def _head(keys: list[str], n: int = 5) -> str:
    more = f", … ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def find_qwen2_config(model_dir: Path) -> Path:
    """`CosyVoice-BlankEN/config.json`, else a `config.json` at the top of the model dir."""
    for path in (model_dir / QWEN_DIR / CONFIG, model_dir / CONFIG):
        if path.exists():
            return path
    raise FileNotFoundError(f"no Qwen2 config in {model_dir}: expected {QWEN_DIR}/{CONFIG} "
                            f"(as CosyVoice3 ships it) or {CONFIG}")


def load_qwen2_config(path: Path) -> Qwen2Config:
    cfg = Qwen2Config.from_json_file(str(path))
    if getattr(cfg, "model_type", "qwen2") != "qwen2":
        raise ValueError(f"{path} describes a {cfg.model_type!r} model, not qwen2")
    return cfg


def read_llm_state(model_dir: Path) -> dict[str, torch.Tensor]:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"CosyVoice3 model dir {model_dir} does not exist")
    path = model_dir / LLM_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {LLM_FILE} in {model_dir}: a CosyVoice3 model dir holds the "
                                f"LM's state dict as {LLM_FILE}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict (got {type(state).__name__})")
    return {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}


def check_state(state: dict[str, torch.Tensor], model: TinyCosy, where: Path) -> None:
    """One-line errors for keys that do not match the layout, then for shapes that do not."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and k != LM_HEAD)
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        raise ValueError(f"{where} does not match CosyVoice3's LM layout: "
                         f"missing {len(missing)} keys ({_head(missing) or '-'}), "
                         f"unexpected {len(unexpected)} ({_head(unexpected) or '-'})")
    bad = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
           if k in state and state[k].shape != v.shape]
    if bad:
        raise ValueError(f"{where}: {len(bad)} tensors have other shapes than its Qwen2 config "
                         f"implies (file vs config): {_head(bad, 3)}")


def load_cosyvoice3_lm(model_dir: str | Path, device: str | torch.device = "cpu") -> TinyCosy:
    """CosyVoice3's LM from `<model_dir>/llm.pt` and its Qwen2 config, in TinyCosy's layout."""
    model_dir = Path(model_dir)
    state = read_llm_state(model_dir)
    qwen2 = load_qwen2_config(find_qwen2_config(model_dir))
    if "speech_embedding.weight" not in state:
        raise ValueError(f"{model_dir / LLM_FILE} does not match CosyVoice3's LM layout: no "
                         f"speech_embedding.weight (first keys: {_head(sorted(state))})")
    codes = state["speech_embedding.weight"].shape[0] - SPEECH_EXTRA
    if codes <= 0:
        raise ValueError(f"{model_dir / LLM_FILE}: speech_embedding has "
                         f"{codes + SPEECH_EXTRA} rows, fewer than the {SPEECH_EXTRA} specials")
    model = TinyCosy.from_qwen2(qwen2, codes)
    check_state(state, model, model_dir / LLM_FILE)
    dtype = model.speech_embedding.weight.dtype
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    if LM_HEAD not in state:
        if qwen2.tie_word_embeddings:
            model.llm.model.tie_weights()
        else:  # the speech LM never uses the text head
            log.info("%s has no %s; the text head stays untrained (unused)", LLM_FILE, LM_HEAD)
    log.info("CosyVoice3 LM from %s: %d layers × %d, %d speech codes", model_dir,
             model.cfg.n_layers, model.cfg.hidden, codes)
    return model.to(device).eval()


def load_text_tokenizer(model_dir: Path):
    """CosyVoice3's text tokenizer: Qwen2's from `CosyVoice-BlankEN` plus CosyVoice3's 280
    special tokens in its order (the same ids); None when there are no tokenizer files."""
    folder = model_dir / QWEN_DIR
    if not folder.is_dir() or not any((folder / f).exists() for f in
                                      ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        log.info("no text tokenizer in %s; give text ids yourself", folder)
        return None
    return cosyvoice3_text_tokenizer(folder)


class CosyVoice3Backbone(SpeechLMBackbone):
    """CosyVoice3's LM behind the `Backbone` interface, plus text encoding and (optional) audio."""

    def __init__(self, model: TinyCosy, model_dir: Path, tokenizer=None):
        super().__init__(model, "cosyvoice3", model.cfg.n_layers, model.cfg.hidden,
                         spec=f"cosyvoice3:{model_dir}", weights=(model_dir / LLM_FILE,))
        self.model_dir, self.tokenizer = model_dir, tokenizer
        self._cosyvoice = None
        self._token_source: str | None = None
        self.speech_tokenizer = SpeechTokenizerV3(model_dir, self.device)

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "cpu") -> CosyVoice3Backbone:
        model_dir = Path(model_dir)
        model = load_cosyvoice3_lm(model_dir, device)
        tok = load_text_tokenizer(model_dir)
        if tok is not None and len(tok) > model.cfg.text_vocab:
            log.warning("text tokenizer has %d ids but the LM embeds %d", len(tok),
                        model.cfg.text_vocab)
        bb = cls(model, model_dir, tok)
        if why := speech_tokenizer_missing(model_dir):
            log.info("no speech tokens from waveforms here: %s", why)
        if not bb.can_render():
            log.info("CosyVoice3 adapter returns speech tokens only: %s", bb.render_missing())
        return bb

    def encode_text(self, text: str, prompt_text: str = "",
                    instruction: str | None = None) -> tuple[torch.Tensor, int]:
        """(text ids, n_text) as CosyVoice3 builds them: system + instruction +
        `<|endofprompt|>` + prompt text, then the text, each tokenized on its own."""
        if self.tokenizer is None:
            raise ValueError(f"no text tokenizer in {self.model_dir / QWEN_DIR}")
        if not text.strip():
            raise ValueError("empty text: give at least one word to speak")
        head = f"{SYSTEM_PROMPT} {instruction}" if instruction else SYSTEM_PROMPT
        ids_head = self.tokenizer.encode(f"{head}<|endofprompt|>{prompt_text}",
                                         add_special_tokens=False)
        ids_text = self.tokenizer.encode(text, add_special_tokens=False)
        return torch.tensor(ids_head + ids_text), len(ids_text)

    def token_texts(self, ids: list[int]) -> list[str]:
        if self.tokenizer is None:
            return super().token_texts(ids)
        return [self.tokenizer.decode([int(i)]) for i in ids]

    def special_id(self, token: str) -> int | None:
        if self.tokenizer is None:
            return None
        ids = self.tokenizer.encode(token, add_special_tokens=False)
        return ids[0] if len(ids) == 1 else None

    def speech_tokens(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """CosyVoice3's own 25 Hz speech tokens (int64) of a mono waveform of at most 30 s, by
        the dir's `speech_tokenizer_v3.onnx` (needs onnxruntime; resampled to 16 kHz)."""
        tokens = self.speech_tokenizer(audio, sr)
        codes = self.model.cfg.speech_codes
        if tokens.size and int(tokens.max()) >= codes:
            raise ValueError(f"{SPEECH_TOKENIZER_FILE} in {self.model_dir} gave token "
                             f"{int(tokens.max())} but the LM has {codes} speech codes: the "
                             f"tokenizer and {LLM_FILE} are not from the same checkpoint")
        return tokens

    def token_source(self) -> str | None:
        """Checksum of the dir's `speech_tokenizer_v3.onnx` (None without one; read once)."""
        path = self.model_dir / SPEECH_TOKENIZER_FILE
        if not path.is_file():
            return None
        if self._token_source is None:
            self._token_source = files_fingerprint([path])
        return self._token_source

    def tokenize_corpus(self, corpus: Path, out: Path, workers: int | None = None) -> dict:
        """Every utterance's speech tokens by the dir's `speech_tokenizer_v3.onnx`, in the
        shards `interp.audio tokenize` writes (resumable; clips over 30 s are refused by name;
        one process: `workers` is not used)."""
        from interp.audio.tokenize_corpus import write_tokens

        if why := speech_tokenizer_missing(self.model_dir):
            raise ValueError(f"cannot tokenize {corpus} with {self.spec}: {why}")
        source = {"codec": self.token_source(), "tokenizer": f"{self.spec} "
                  f"{SPEECH_TOKENIZER_FILE}", "model": self.spec,
                  "n_codes": self.model.cfg.speech_codes}
        return write_tokens(Path(corpus), Path(out), self.speech_tokens, source)

    # -- waveform, only with CosyVoice's own flow + HiFT -----------------------------------
    def render_missing(self) -> str:
        """Why waveforms cannot be rendered here ('' when they can): what to install and which
        checkpoint files to put in the dir, in one line."""
        absent = [f for f in RENDER_FILES if not (self.model_dir / f).exists()]
        why = []
        if importlib.util.find_spec("cosyvoice") is None:
            why.append(f"the `cosyvoice` package is not importable ({COSYVOICE_INSTALL})")
        if absent:
            why.append(f"{', '.join(absent)} of the CosyVoice3 checkpoint are missing in "
                       f"{self.model_dir} (copy them there, next to {LLM_FILE})")
        return ("CosyVoice3 renders waveforms with CosyVoice's flow + HiFT, but "
                + " and ".join(why)) if why else ""

    def can_render(self) -> bool:
        return not self.render_missing()

    def _engine(self):
        if self._cosyvoice is None:
            if why := self.render_missing():
                raise RuntimeError(f"cannot render waveforms: {why}; use the speech tokens")
            from cosyvoice.cli.cosyvoice import CosyVoice3  # a local dir: nothing is downloaded

            self._cosyvoice = CosyVoice3(str(self.model_dir))
        return self._cosyvoice

    def prompt_tokens(self, prompt_wav: str | Path) -> torch.Tensor:
        """Speech tokens of a whole prompt wav (≤ 30 s), with CosyVoice3's own speech tokenizer
        (`prompt()` instead cuts a wav to its first 3 s)."""
        from interp.audio.wav import read_audio

        return torch.from_numpy(self.speech_tokens(*read_audio(prompt_wav)))

    def render(self, tokens: list[int] | np.ndarray, prompt=None) -> np.ndarray:
        """16 kHz waveform of speech tokens in the voice of `prompt` (a wav path), by flow +
        HiFT."""
        if not isinstance(prompt, (str, Path)):
            raise ValueError("CosyVoice3 renders in the voice of a prompt wav: give its path")
        wav, sr = self.render_at_rate(list(tokens), prompt)
        if sr == self.sample_rate:
            return wav
        import librosa

        return librosa.resample(wav, orig_sr=sr, target_sr=self.sample_rate)

    def render_at_rate(self, tokens: list[int], prompt_wav: str | Path) -> tuple[np.ndarray, int]:
        """(waveform, sample rate) of speech tokens in the prompt's voice, by flow + HiFT."""
        engine = self._engine()
        inp = engine.frontend.frontend_zero_shot("x", "", str(prompt_wav), engine.sample_rate, "")
        key = str(uuid.uuid4())
        engine.model.hift_cache_dict[key] = None
        try:
            wav = engine.model.token2wav(
                token=torch.tensor([tokens]), prompt_token=inp["flow_prompt_speech_token"],
                prompt_feat=inp["prompt_speech_feat"], embedding=inp["flow_embedding"],
                token_offset=0, uuid=key, finalize=True)
        finally:
            engine.model.hift_cache_dict.pop(key, None)
        return wav[0].float().cpu().numpy(), engine.sample_rate
