"""The speech codec's stages as configs and functions a notebook can call; `python -m interp.audio`
is the thin CLI over them.

    run_fit(FitJob(corpus=...), CodecConfig(n_codes=256))   fit and save a codec
    run_fit_decoder(DecoderJob(...), DecoderFitConfig())    a learned token → frames decoder
    run_roundtrip(RoundTripJob(...), RoundTripConfig())     wav → tokens → wav figures
    run_tokenize(TokenizeConfig(...))                       speech tokens of a corpus
    run_encode(EncodeConfig(wav=...))                       tokens of one wav
    run_decode(DecodeConfig(tokens=...))                    the wav of a token file

Where fitting and the round trip take two configs, the second holds what is saved with the
artifact (the codec's hyper-parameters, the measurement's settings); the first, the *job*, says
where to read and write.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from interp.audio.codec import CodecConfig, SpeechCodec
from interp.audio.roundtrip import RoundTripConfig, measure_roundtrip
from interp.audio.token_decoder import DecoderFitConfig, fit_decoder
from interp.audio.tokenize_corpus import tokenize_corpus
from interp.audio.wav import read_wav
from interp.corpus.table import load_audio, load_table

DEFAULT_CODEC = Path("data/codec")
DEFAULT_CORPUS = Path("runs/tinycosy/corpus")


@dataclass(frozen=True)
class FitJob:
    """Which corpus a codec is fitted on and where it goes (hyper-parameters: CodecConfig)."""

    corpus: Path = DEFAULT_CORPUS
    """corpus folder (its train split is used)"""
    out: Path = DEFAULT_CODEC
    """codec folder to write"""
    max_utts: int = 2000
    """train utterances to load"""


def run_fit(job: FitJob, cfg: CodecConfig | None = None) -> SpeechCodec:
    """Fit the codec on up to `job.max_utts` shuffled train utterances and save it to `job.out`."""
    cfg = cfg or CodecConfig()
    rows = load_table(Path(job.corpus), "train")
    random.Random(cfg.seed).shuffle(rows)
    rows = rows[: job.max_utts]
    audios = [load_audio(Path(job.corpus), r)[0] for r in tqdm(rows, desc="load", unit="utt")]
    codec = SpeechCodec.fit(audios, cfg)
    codec.save(Path(job.out))
    return codec


@dataclass(frozen=True)
class DecoderJob:
    """Which codec a token decoder is learned for, on which corpus, and where the codec and its
    decoder go together (settings: DecoderFitConfig)."""

    corpus: Path = DEFAULT_CORPUS
    """corpus folder (train split to learn from, held-out voices to measure)"""
    codec: Path = DEFAULT_CODEC
    """the codec whose tokens are decoded (left as it is)"""
    out: Path = Path("runs/codec_decoder")
    """folder for a copy of the codec with its decoder (use it as any codec folder)"""


def run_fit_decoder(job: DecoderJob, cfg: DecoderFitConfig | None = None) -> dict:
    """Learn a TokenDecoder for `job.codec` and write codec + decoder to `job.out`."""
    if Path(job.out).resolve() == Path(job.codec).resolve():
        raise ValueError(f"--out {job.out} is the codec folder itself; write the decoder beside "
                         "a copy (another --out) so the codec's own decoding stays as it was")
    return fit_decoder(Path(job.corpus), SpeechCodec.load(job.codec), cfg or DecoderFitConfig(),
                       Path(job.out))


@dataclass(frozen=True)
class RoundTripJob:
    """Which corpus and codec the round trip measures, and where its figures go (settings:
    RoundTripConfig)."""

    corpus: Path = DEFAULT_CORPUS
    """corpus folder"""
    codec: Path = DEFAULT_CODEC
    """codec folder"""
    out: Path | None = None
    """output folder (default: <corpus>/../codec_roundtrip)"""

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.corpus).parent / "codec_roundtrip"


def run_roundtrip(job: RoundTripJob, cfg: RoundTripConfig | None = None) -> dict:
    """Measure wav → tokens → wav on `cfg.split`; writes roundtrip.json/.html and examples."""
    codec = SpeechCodec.load(Path(job.codec))
    return measure_roundtrip(Path(job.corpus), codec, cfg or RoundTripConfig(), job.out_dir)


@dataclass(frozen=True)
class TokenizeConfig:
    """Speech tokens of a whole corpus, in resumable shards."""

    corpus: Path = DEFAULT_CORPUS
    """corpus folder"""
    codec: Path = DEFAULT_CODEC
    """codec folder"""
    out: Path | None = None
    """tokens folder (default: <corpus>/../tokens)"""
    workers: int | None = None
    """processes (default: all cores)"""
    model: str = ""
    """a backbone whose own speech tokenizer makes the tokens instead of --codec (e.g.
    cosyvoice3:<dir>, its speech_tokenizer_v3.onnx; tinycosy:<dir>, the codec it names)"""

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.corpus).parent / "tokens"


def run_tokenize(cfg: TokenizeConfig) -> dict:
    """Tokenize every utterance not yet in a finished shard; returns the tokens manifest."""
    if cfg.model:
        from interp.models.registry import load_backbone

        return load_backbone(cfg.model, "cpu").tokenize_corpus(Path(cfg.corpus), cfg.out_dir,
                                                              cfg.workers)
    return tokenize_corpus(Path(cfg.corpus), Path(cfg.codec), cfg.out_dir, cfg.workers)


@dataclass(frozen=True)
class EncodeConfig:
    """The tokens of one 16 kHz wav."""

    wav: Path
    """wav file to encode"""
    codec: Path = DEFAULT_CODEC
    """codec folder"""
    out: Path | None = None
    """also save the tokens as .npy here"""


def run_encode(cfg: EncodeConfig) -> np.ndarray:
    """(T,) int64 speech tokens of `cfg.wav` (saved to `cfg.out` when given)."""
    codec = SpeechCodec.load(Path(cfg.codec))
    tokens = codec.encode(read_wav(Path(cfg.wav), codec.sample_rate))
    if cfg.out:
        np.save(cfg.out, tokens)
    return tokens


@dataclass(frozen=True)
class DecodeConfig:
    """The wav of a token file."""

    tokens: Path
    """token file: .npy, or a JSON list"""
    codec: Path = DEFAULT_CODEC
    """codec folder"""
    out: Path = Path("decoded.wav")
    """wav file to write"""


def read_tokens(path: Path) -> np.ndarray:
    """Tokens from a .npy file or a JSON list."""
    path = Path(path)
    return np.load(path) if path.suffix == ".npy" else np.array(json.loads(path.read_text()))


def run_decode(cfg: DecodeConfig) -> dict:
    """Write the wav of `cfg.tokens` to `cfg.out`; returns its path, token count and length."""
    codec = SpeechCodec.load(Path(cfg.codec))
    tokens = read_tokens(Path(cfg.tokens))
    sf.write(cfg.out, codec.decode(tokens), codec.sample_rate)
    return {"out": Path(cfg.out), "tokens": len(tokens),
            "seconds": len(tokens) / codec.cfg.token_rate}

