"""Speaker fingerprints for "does the output keep the voice?" (the frontier's voice_kept).

By default the weight-free MFCC statistics of `interp.audio.voice`. With `--instruments
speaker=DIR`, a local transformers speaker model instead: an x-vector head
(`AutoModelForAudioXVector`, e.g. a WavLM or UniSpeech-SAT speaker-verification checkpoint: its
`embeddings`), or any other audio encoder (`AutoModel`: the mean of its last hidden states over
time). Nothing is downloaded: the folder must hold the files.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from interp.audio import SAMPLE_RATE
from interp.audio.voice import voice_embedding
from interp.instruments.common import InstrumentError, in_use, prepare_audio

MIN_SECONDS = 0.2  # as the MFCC fingerprint: shorter audio has no fingerprint


def speaker_embedding(audio: np.ndarray, sr: int = SAMPLE_RATE) -> list[float] | None:
    """The fingerprint of the speaker instrument in use (MFCC statistics when none is); None for
    audio under 0.2 s or silent."""
    folder = in_use("speaker")
    if folder is None:
        return voice_embedding(audio, sr)
    if len(audio) < MIN_SECONDS * sr or not np.any(audio):
        return None
    return _encoder(str(folder)).embed(audio, sr)


def speaker_instrument() -> str:
    """What fingerprints voices now: 'mfcc' or the speaker model's folder."""
    folder = in_use("speaker")
    return "mfcc" if folder is None else str(folder)


class SpeakerEncoder:
    """A transformers speaker model's utterance embedding."""

    def __init__(self, model, extractor=None):
        self.model, self.extractor = model.eval(), extractor

    @torch.no_grad()
    def embed(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> list[float]:
        audio, _ = prepare_audio(wav, sr)
        if self.extractor is not None:
            inputs = self.extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        else:
            x = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
            inputs = {"input_values": torch.from_numpy(x.astype(np.float32))[None]}
        out = self.model(**inputs)
        emb = out.embeddings[0] if hasattr(out, "embeddings") else out.last_hidden_state[0].mean(0)
        return [round(float(v), 5) for v in emb]


@lru_cache(maxsize=2)
def _encoder(folder: str) -> SpeakerEncoder:
    from transformers import AutoFeatureExtractor, AutoModel, AutoModelForAudioXVector

    path = Path(folder)
    try:
        arch = json.loads((path / "config.json").read_text()).get("architectures") or []
        # an x-vector checkpoint by its saved class; anything else loads as a plain encoder (an
        # x-vector class would load it too, with a random head)
        cls = AutoModelForAudioXVector if any(a.endswith("ForXVector") for a in arch) else AutoModel
        model = cls.from_pretrained(path, local_files_only=True)
        extractor = (AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
                     if (path / "preprocessor_config.json").exists() else None)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise InstrumentError(f"cannot load a speaker model from {folder} "
                              f"({str(exc).splitlines()[0][:160]})") from None
    return SpeakerEncoder(model, extractor)
