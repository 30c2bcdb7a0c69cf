"""A Whisper checkpoint from a local folder as the content instrument (`--instruments asr=DIR`).

The shipped recogniser is a small CTC model trained on the synthetic corpus; a researcher with
real speech wants real ears. Any `WhisperForConditionalGeneration` folder (config.json,
model.safetensors, the processor's tokenizer and feature-extractor files) reads the same way:
its transcript is the `greedy` reading (there is no lexicon or word-list decode: Whisper's own
decoder is already open-vocabulary), normalised like every transcript (lower case, no
punctuation). It cannot force-align words, so the importer's `--timings ctc` needs a CTC
recogniser (`--timings whole` works with any). Nothing is downloaded: the folder must hold the
files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from interp.audio import SAMPLE_RATE
from interp.instruments.common import InstrumentError, is_silent, prepare_audio
from interp.instruments.text import normalize_text

CHUNK_S = 30.0  # Whisper's window
MAX_NEW_TOKENS = 220


def is_whisper(folder: str | Path) -> bool:
    cfg = Path(folder) / "config.json"
    return cfg.exists() and json.loads(cfg.read_text()).get("model_type") == "whisper"


class WhisperRecognizer:
    """Transcripts from a local Whisper checkpoint, with the CTC recogniser's reading API."""

    lexicon = None  # no grammar-lexicon decode: `lexicon` readings are the transcript itself
    wordlist = None  # no separate open decode: the transcript is open-vocabulary already

    def __init__(self, model, processor, language: str | None = "en"):
        self.model, self.processor = model.eval(), processor
        self.language = language

    @classmethod
    def load(cls, folder: str | Path) -> WhisperRecognizer:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        folder = Path(folder)
        try:
            model = WhisperForConditionalGeneration.from_pretrained(folder, local_files_only=True)
            processor = WhisperProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise InstrumentError(f"cannot load the Whisper checkpoint in {folder} ({exc}); it "
                                  "needs config.json, the weights and the processor's tokenizer "
                                  "and preprocessor files") from None
        lang = getattr(model.generation_config, "lang_to_id", None)
        return cls(model, processor, "en" if lang and "<|en|>" in lang else None)

    @torch.no_grad()
    def _transcribe(self, audio: np.ndarray) -> str:
        step = int(CHUNK_S * SAMPLE_RATE)
        parts = []
        for i in range(0, len(audio), step):
            chunk = audio[i: i + step]
            if len(chunk) < SAMPLE_RATE // 20:
                continue
            feats = self.processor(chunk, sampling_rate=SAMPLE_RATE,
                                   return_tensors="pt").input_features.to(self.model.dtype)
            kw = {"language": self.language, "task": "transcribe"} if self.language else {}
            room = int(getattr(self.model.config, "max_target_positions", 448)) - 4  # prompt
            ids = self.model.generate(feats, max_new_tokens=min(MAX_NEW_TOKENS, room), **kw)
            parts.append(self.processor.batch_decode(ids, skip_special_tokens=True)[0])
        return normalize_text(" ".join(parts))

    def readings(self, wav: np.ndarray, sr: int = SAMPLE_RATE, open_vocab: bool = True,
                 wordlist: bool = False) -> dict[str, str]:
        """{"greedy", "lexicon"}: both Whisper's transcript (the CTC recogniser's keys)."""
        audio, _ = prepare_audio(wav, sr)
        text = "" if is_silent(audio) else self._transcribe(audio)
        return {"greedy": text, "lexicon": text}

    def transcribe_both(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[str, str]:
        r = self.readings(wav, sr)
        return r["greedy"], r["lexicon"]

    def transcribe(self, wav: np.ndarray, sr: int = SAMPLE_RATE, lexicon: bool = False) -> str:
        return self.readings(wav, sr)["greedy"]

    def align(self, audio: np.ndarray, words: Sequence[str]) -> None:
        raise InstrumentError("a Whisper recogniser cannot force-align words: import with "
                              "--timings whole, or give a CTC recogniser (--asr)")
