"""A local audio classifier as the laughter instrument (`--instruments laughter=DIR`).

The shipped detector is a small frame model trained on the synthetic corpus; a researcher with
real speech may have a better one. Any transformers audio classifier in a local folder whose
labels name laughter (e.g. an AudioSet AST or a fine-tuned wav2vec2/HuBERT: "Laughter",
"laugh", ...) reads the same way as the shipped detector: it is run on 1 s windows every 0.2 s,
and each 25 Hz frame takes the largest laughter probability of the windows that cover it, so
frame probabilities, spans and the utterance score (max of the 200 ms-smoothed frames) mean what
they mean for the shipped detector. A model trained for several labels at once
(`problem_type: multi_label_classification`, as AudioSet's are) is read with a sigmoid, any other
with a softmax. Nothing is downloaded: the folder must hold the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from interp.audio import SAMPLE_RATE
from interp.instruments.common import InstrumentError, prepare_audio
from interp.instruments.laughter import SPF, FrameScores, LaughterDetector, LaughterModelConfig

WINDOW_S, HOP_S = 1.0, 0.2


def is_laughter_classifier(folder: str | Path) -> bool:
    """True for a transformers model folder (the shipped detector has laughter.safetensors)."""
    cfg = Path(folder) / "config.json"
    return cfg.exists() and "model_type" in json.loads(cfg.read_text())


class LaughterClassifier(FrameScores):
    """The shipped `LaughterDetector`'s interface over a transformers audio classifier."""

    def __init__(self, model, extractor=None, smooth_frames: int = 5, threshold: float = 0.5):
        self.model = model.eval()
        self.extractor = extractor
        self.cfg = LaughterModelConfig(smooth_frames=smooth_frames, threshold=threshold)
        labels = {int(i): str(v).lower() for i, v in model.config.id2label.items()}
        laugh = [i for i, v in labels.items() if "laugh" in v]
        if len(laugh) != 1:
            raise InstrumentError(f"cannot tell which label is laughter among "
                                  f"{list(labels.values())[:12]}: exactly one must contain 'laugh'")
        self.index = laugh[0]
        self.multi_label = model.config.problem_type == "multi_label_classification"

    @classmethod
    def load(cls, folder: str | Path) -> LaughterClassifier:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        folder = Path(folder)
        try:
            model = AutoModelForAudioClassification.from_pretrained(folder, local_files_only=True)
            extractor = (AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
                         if (folder / "preprocessor_config.json").exists() else None)
        except (OSError, ValueError) as exc:
            raise InstrumentError(f"cannot load an audio classifier from {folder} "
                                  f"({str(exc).splitlines()[0][:160]})") from None
        return cls(model, extractor)

    @torch.no_grad()
    def _window_probs(self, windows: list[np.ndarray]) -> np.ndarray:
        if self.extractor is not None:
            inputs = self.extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                    padding=True)
        else:  # the waveform, normalised per window as Wav2Vec2's extractor does
            x = np.stack([(w - w.mean()) / np.sqrt(w.var() + 1e-7) for w in windows])
            inputs = {"input_values": torch.from_numpy(x.astype(np.float32))}
        logits = self.model(**inputs).logits.double()
        p = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)
        return p[:, self.index].numpy()

    def frame_probs(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """(N,) laughter probability of 25 Hz frames: the most of the 1 s windows over each."""
        audio, _ = prepare_audio(wav, sr)
        n = -(-len(audio) // SPF)
        win, hop = int(WINDOW_S * SAMPLE_RATE), int(HOP_S * SAMPLE_RATE)
        starts = list(range(0, max(len(audio) - win, 0) + 1, hop))
        if starts[-1] + win < len(audio):
            starts.append(len(audio) - win)
        windows = [np.pad(audio[s: s + win], (0, max(0, win - len(audio[s: s + win]))))
                   for s in starts]
        probs = np.concatenate([self._window_probs(windows[i: i + 16])
                                for i in range(0, len(windows), 16)])
        out = np.zeros(n)
        for s, p in zip(starts, probs, strict=True):
            first, last = s // SPF, min(n, -(-(s + win) // SPF))
            out[first:last] = np.maximum(out[first:last], p)
        return out


def load_laughter(folder: str | Path) -> LaughterClassifier | LaughterDetector:
    """The laughter instrument in `folder`: the shipped detector's files or an audio classifier."""
    if is_laughter_classifier(folder):
        return LaughterClassifier.load(folder)
    return LaughterDetector.load(folder)
