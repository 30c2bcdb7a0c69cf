"""CosyVoice3's own tokenizers, read from a local model directory without the `cosyvoice` package.

Speech: `speech_tokenizer_v3.onnx` (S3Tokenizer v3, 25 Hz, 6561 = 3^8 FSQ codes), run with
`onnxruntime` on Whisper's 128-bin log-mel exactly as CosyVoice's frontend
(`cosyvoice/cli/frontend.py`, `_extract_speech_token`) does: 16 kHz audio →
`whisper.log_mel_spectrogram(speech, n_mels=128)` → inputs `feats` (1, 128, T) float32 and
`feats_length` (1,) int32 → output `indices`, flattened. Clips over 30 s are refused, as
CosyVoice refuses them.

Text: Qwen2's tokenizer in `CosyVoice-BlankEN/` plus `CosyVoice3Tokenizer`'s special tokens
(`cosyvoice/tokenizer/tokenizer.py`), added in the same order so they get the same ids.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from interp.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

SPEECH_TOKENIZER_FILE = "speech_tokenizer_v3.onnx"
N_FFT, HOP, N_MELS = 400, 160, 128  # Whisper's front end at 16 kHz: 100 frames a second
MAX_SECONDS = 30.0  # CosyVoice's frontend asserts the same
MIN_SAMPLES = 4 * HOP  # 40 ms: one 25 Hz token
CODEBOOK = 3 ** 8  # 6561 FSQ codes
INSTALL_HINT = "pip install 'audio-interp-workbench[cosyvoice3]' (or just onnxruntime)"


@lru_cache(maxsize=1)
def mel_filters() -> torch.Tensor:
    """(128, 201) Slaney mel filters; Whisper's `mel_filters.npz` was saved from this very call."""
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS))


def whisper_log_mel(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(1, 128, len // 160) float32 log-mel of 16 kHz mono audio, as
    `whisper.log_mel_spectrogram(audio, n_mels=128)`: centred Hann STFT (n_fft 400, hop 160),
    the last frame dropped, power through the mel filters, log10 clamped at 1e-10, floored 8
    below the maximum, then (x + 4) / 4."""
    x = torch.as_tensor(np.asarray(audio, np.float32))
    stft = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(mel_filters() @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0)[None]


def speech_tokenizer_missing(model_dir: Path) -> str:
    """Why CosyVoice3 speech tokens cannot be made here ('' when they can)."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return f"CosyVoice3's speech tokenizer needs onnxruntime: {INSTALL_HINT}"
    if not (Path(model_dir) / SPEECH_TOKENIZER_FILE).is_file():
        return (f"no {SPEECH_TOKENIZER_FILE} in {model_dir}: copy the one that ships with the "
                f"CosyVoice3 checkpoint (next to llm.pt) there")
    return ""


class SpeechTokenizerV3:
    """`speech_tokenizer_v3.onnx` of a CosyVoice3 dir: waveform → 25 Hz speech tokens (int64).

    The ONNX session opens at the first call (the real file is ~1 GB) with as many threads as
    torch uses; inputs are fed by position, as CosyVoice does, so their names need not match."""

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu"):
        self.model_dir, self.device = Path(model_dir), torch.device(device)
        self.path = self.model_dir / SPEECH_TOKENIZER_FILE
        self._session = None

    def session(self):
        if self._session is None:
            try:
                import onnxruntime as ort
            except ImportError as err:
                raise RuntimeError(f"CosyVoice3's speech tokenizer needs onnxruntime: "
                                   f"{INSTALL_HINT}") from err
            if not self.path.is_file():
                raise FileNotFoundError(speech_tokenizer_missing(self.model_dir))
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.intra_op_num_threads = torch.get_num_threads()
            providers = ["CPUExecutionProvider"]
            if self.device.type == "cuda" and "CUDAExecutionProvider" in \
                    ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
            if len(session.get_inputs()) != 2:
                raise ValueError(f"{self.path} takes {len(session.get_inputs())} inputs, not "
                                 f"(feats, feats_length): not CosyVoice's speech tokenizer")
            self._session = session
        return self._session

    def __call__(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """(n,) int64 speech tokens of a mono waveform at `sr` (resampled to 16 kHz),
        n = ceil(frames / 4) for frames = samples // 160 at 16 kHz."""
        session = self.session()  # a missing onnxruntime or file is said first
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1:
            raise ValueError(f"give a mono waveform (1-D samples), not shape {audio.shape}")
        if len(audio) / sr > MAX_SECONDS:
            raise ValueError(f"CosyVoice3's speech tokenizer takes clips of at most "
                             f"{MAX_SECONDS:.0f} s (as CosyVoice's own frontend); this one has "
                             f"{len(audio) / sr:.1f} s: cut it first")
        if sr != SAMPLE_RATE:
            import librosa

            audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLE_RATE)
        if len(audio) < MIN_SAMPLES:
            raise ValueError(f"the clip is {len(audio) / SAMPLE_RATE * 1000:.0f} ms long, "
                             f"shorter than one 25 Hz speech token (40 ms)")
        feats = whisper_log_mel(audio).numpy()
        feeds = session.get_inputs()
        length_dtype = np.int64 if "int64" in feeds[1].type else np.int32
        out = session.run(None, {feeds[0].name: feats,
                                 feeds[1].name: np.array([feats.shape[2]], dtype=length_dtype)})
        return np.asarray(out[0]).reshape(-1).astype(np.int64)


# CosyVoice3Tokenizer's additional special tokens, in its order (cosyvoice/tokenizer/tokenizer.py
# at FunAudioLLM/CosyVoice ace7c47): the ones Qwen2 lacks get consecutive ids after Qwen2's
# vocabulary in this order, so the order is part of the model. 280 tokens, 278 new to Qwen2.
COSYVOICE3_SPECIALS: tuple[str, ...] = (
    "<|im_start|>", "<|im_end|>", "<|endofprompt|>",
    "[breath]", "<strong>", "</strong>", "[noise]",
    "[laughter]", "[cough]", "[clucking]", "[accent]",
    "[quick_breath]",
    "<laughter>", "</laughter>",
    "[hissing]", "[sigh]", "[vocalized-noise]",
    "[lipsmack]", "[mn]", "<|endofsystem|>",
    # English phonemes (CMUdict, with stress)
    "[AA]", "[AA0]", "[AA1]", "[AA2]", "[AE]", "[AE0]", "[AE1]", "[AE2]", "[AH]", "[AH0]", "[AH1]",
    "[AH2]", "[AO]", "[AO0]", "[AO1]", "[AO2]", "[AW]", "[AW0]", "[AW1]", "[AW2]", "[AY]", "[AY0]",
    "[AY1]", "[AY2]", "[B]", "[CH]", "[D]", "[DH]", "[EH]", "[EH0]", "[EH1]", "[EH2]", "[ER]",
    "[ER0]", "[ER1]", "[ER2]", "[EY]", "[EY0]", "[EY1]", "[EY2]", "[F]", "[G]", "[HH]", "[IH]",
    "[IH0]", "[IH1]", "[IH2]", "[IY]", "[IY0]", "[IY1]", "[IY2]", "[JH]", "[K]", "[L]", "[M]",
    "[N]", "[NG]", "[OW]", "[OW0]", "[OW1]", "[OW2]", "[OY]", "[OY0]", "[OY1]", "[OY2]", "[P]",
    "[R]", "[S]", "[SH]", "[T]", "[TH]", "[UH]", "[UH0]", "[UH1]", "[UH2]", "[UW]", "[UW0]",
    "[UW1]", "[UW2]", "[V]", "[W]", "[Y]", "[Z]", "[ZH]",
    # Mandarin pinyin initials and toned finals
    "[a]", "[ai]", "[an]", "[ang]", "[ao]", "[b]", "[c]", "[ch]", "[d]", "[e]", "[ei]", "[en]",
    "[eng]", "[f]", "[g]", "[h]", "[i]", "[ian]", "[in]", "[ing]", "[iu]", "[ià]", "[iàn]",
    "[iàng]", "[iào]", "[iá]", "[ián]", "[iáng]", "[iáo]", "[iè]", "[ié]", "[iòng]", "[ióng]",
    "[iù]", "[iú]", "[iā]", "[iān]", "[iāng]", "[iāo]", "[iē]", "[iě]", "[iōng]", "[iū]", "[iǎ]",
    "[iǎn]", "[iǎng]", "[iǎo]", "[iǒng]", "[iǔ]", "[j]", "[k]", "[l]", "[m]", "[n]", "[o]",
    "[ong]", "[ou]", "[p]", "[q]", "[r]", "[s]", "[sh]", "[t]", "[u]", "[uang]", "[ue]", "[un]",
    "[uo]", "[uà]", "[uài]", "[uàn]", "[uàng]", "[uá]", "[uái]", "[uán]", "[uáng]", "[uè]",
    "[ué]", "[uì]", "[uí]", "[uò]", "[uó]", "[uā]", "[uāi]", "[uān]", "[uāng]", "[uē]", "[uě]",
    "[uī]", "[uō]", "[uǎ]", "[uǎi]", "[uǎn]", "[uǎng]", "[uǐ]", "[uǒ]", "[vè]", "[w]", "[x]",
    "[y]", "[z]", "[zh]", "[à]", "[ài]", "[àn]", "[àng]", "[ào]", "[á]", "[ái]", "[án]", "[áng]",
    "[áo]", "[è]", "[èi]", "[èn]", "[èng]", "[èr]", "[é]", "[éi]", "[én]", "[éng]", "[ér]", "[ì]",
    "[ìn]", "[ìng]", "[í]", "[ín]", "[íng]", "[ò]", "[òng]", "[òu]", "[ó]", "[óng]", "[óu]", "[ù]",
    "[ùn]", "[ú]", "[ún]", "[ā]", "[āi]", "[ān]", "[āng]", "[āo]", "[ē]", "[ēi]", "[ēn]",
    "[ēng]", "[ě]", "[ěi]", "[ěn]", "[ěng]", "[ěr]", "[ī]", "[īn]", "[īng]", "[ō]", "[ōng]",
    "[ōu]", "[ū]", "[ūn]", "[ǎ]", "[ǎi]", "[ǎn]", "[ǎng]", "[ǎo]", "[ǐ]", "[ǐn]", "[ǐng]", "[ǒ]",
    "[ǒng]", "[ǒu]", "[ǔ]", "[ǔn]", "[ǘ]", "[ǚ]", "[ǜ]",
)


def cosyvoice3_text_tokenizer(folder: str | Path):
    """Qwen2's tokenizer from `folder` (CosyVoice-BlankEN, local files only) with CosyVoice3's
    special tokens added as `CosyVoice3Tokenizer` adds them (eos and pad `<|endoftext|>`)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    added = tok.add_special_tokens({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                                    "additional_special_tokens": list(COSYVOICE3_SPECIALS)})
    log.info("CosyVoice3 text tokenizer from %s: %d ids, %d special tokens added", folder,
             len(tok), added)
    return tok
