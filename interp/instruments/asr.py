"""Content instrument: a character CTC recogniser (`Wav2Vec2ForCTC`; greedy and lexicon decoding).

Its characters are letters, or (`--units phonemes`, `interp.instruments.ctc_phonemes`) espeak-ng
phonemes, turned back into words by a pronunciation table.

The shipped model is a small wav2vec2 trained from scratch on the corpus's plain text (letters,
apostrophe, word breaks) over original and codec round-trip audio. To learn fast on a CPU it is
fed log-mel frames instead of the waveform, through the unchanged HF class: the frontend
(`frontend.json`) flattens 80-band log-mel at 100 Hz into one sequence of `input_values`, the
first "convolution" (kernel = stride = 80) reads one frame at a time, the second halves the rate
to 50 Hz. Any local HF CTC checkpoint with a `vocab.json` and no `frontend.json` (e.g. a
wav2vec2-base-960h copy) loads as a raw-waveform model.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
)

from interp.audio import SAMPLE_RATE
from interp.audio.features import MelConfig, log_mel
from interp.instruments.common import is_silent, prepare_audio, require_files, write_json
from interp.instruments.ctc_align import forced_align, word_spans
from interp.instruments.ctc_lexicon import LexiconDecoder
from interp.instruments.ctc_open import (
    WORDLIST,
    OpenBeamConfig,
    OpenDecoder,
    WordList,
)
from interp.instruments.ctc_phonemes import Pronunciations
from interp.instruments.data import Augment, ClipPool, augment
from interp.instruments.text import ALPHABET, Lexicon, corpus_error_rates, normalize_text
from interp.loop import LoopConfig, fit

logger = logging.getLogger(__name__)

NAME = "asr"
FRONTEND = "frontend.json"
LEXICON = "lexicon.txt"
OPEN_DECODE = "open_decode.json"  # the open decode's weights when tuned for this recogniser
CHUNK_S = 20.0
VOCAB = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(ALPHABET)}}


@dataclass(frozen=True)
class AsrConfig:
    """Model size and training schedule of the recogniser."""

    hidden_size: int = 192
    """transformer width"""
    layers: int = 4
    """transformer layers"""
    heads: int = 4
    """attention heads"""
    intermediate_size: int = 768
    """transformer MLP width"""
    frontend: str = "logmel"
    """logmel (flattened 100 Hz log-mel frames) or waveform (wav2vec2's conv stack on 16 kHz)"""
    n_mels: int = 80
    """mel bands of the logmel frontend"""
    conv_channels: tuple[int, ...] = (256, 256)
    """feature-extractor channels: logmel takes 2 (frame → 100 Hz, then 50 Hz), waveform 7"""
    mask_time_prob: float = 0.0
    """SpecAugment-style time masking while training"""
    steps: int = 4000
    """optimiser steps"""
    batch_seconds: float = 20.0
    """seconds of audio per step (utterances of similar length are batched together)"""
    lr: float = 2.5e-3
    """peak learning rate"""
    warmup: int = 150
    """warm-up steps"""
    roundtrip_frac: float = 0.35
    """share of training utterances taken from codec round trips"""
    n_roundtrip: int = 3072
    """train utterances with a (cached) round trip"""
    n_eval: int = 0
    """heldout_voices utterances to evaluate on (0 = all)"""
    n_eval_roundtrip: int = 384
    """heldout_voices utterances evaluated after the round trip"""
    seed: int = 0
    """random seed"""
    max_minutes: float = 18.0
    """stop training after this many minutes"""
    init_from: str = ""
    """continue training this recogniser folder (its architecture wins over the size flags)"""
    extra_share: float = 0.5
    """share of training batches drawn from the job's --extra-corpus (when given)"""
    n_extra_roundtrip: int = 1024
    """--extra-corpus train utterances with a (cached) round trip"""
    wordlist_size: int = 50_000
    """words of the open-vocabulary decode's list (wordfreq's most frequent; 0 = none), when
    the recogniser does not already carry one"""
    units: str = "letters"
    """letters, or phonemes (espeak-ng's en-us phonemes, words from a pronunciation table of the
    word list and the training sentences: `interp.instruments.ctc_phonemes`)"""

    def __post_init__(self) -> None:  # --conv-channels arrives as strings from the CLI
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        if self.units not in ("letters", "phonemes"):
            raise ValueError(f"unknown --units {self.units!r}: letters or phonemes")


def normalize(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


@dataclass(frozen=True)
class Frontend:
    """What `input_values` are: the 16 kHz waveform, or flattened per-utterance-normalised
    log-mel frames (frame-major: T frames × n_mels values)."""

    kind: str = "waveform"
    n_mels: int = 80
    n_fft: int = 400
    hop: int = 160
    do_normalize: bool = True  # waveform: zero mean, unit variance (HF feature extractors' flag)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if self.kind == "waveform":
            return normalize(audio) if self.do_normalize else audio.astype(np.float32)
        if self.kind != "logmel":
            raise ValueError(f"unknown ASR frontend {self.kind!r} (logmel or waveform)")
        x = log_mel(audio, MelConfig(n_fft=self.n_fft, hop_length=self.hop, n_mels=self.n_mels))
        x = (x - x.mean(0)) / (x.std(0) + 1e-3)  # (T, n_mels)
        return x.reshape(-1).astype(np.float32)

    def conv(self, channels: tuple[int, ...]) -> dict:
        if self.kind == "logmel":
            if len(channels) != 2:
                raise ValueError("the logmel frontend takes exactly 2 conv channel counts")
            return {"conv_kernel": (self.n_mels, 3), "conv_stride": (self.n_mels, 2),
                    "feat_extract_norm": "layer"}
        if len(channels) != 7:
            raise ValueError("the waveform frontend takes exactly 7 conv channel counts")
        return {"conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
                "feat_extract_norm": "group"}


def model_config(cfg: AsrConfig, vocab_size: int = len(VOCAB)) -> Wav2Vec2Config:
    front = Frontend(cfg.frontend, cfg.n_mels)
    return Wav2Vec2Config(
        vocab_size=vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate_size,
        conv_dim=tuple(cfg.conv_channels), **front.conv(tuple(cfg.conv_channels)),
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
        mask_time_prob=cfg.mask_time_prob, mask_time_length=5, layerdrop=0.0,
        do_stable_layer_norm=True, pad_token_id=0, bos_token_id=None, eos_token_id=None,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True)


def new_tokenizer(folder: Path, vocab: dict[str, int] | None = None) -> Wav2Vec2CTCTokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab or VOCAB))
    return Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                word_delimiter_token="|")


class Recognizer:
    """CTC transcription of waveforms: greedy; with a `lexicon` also lexicon-constrained (beam
    search over known words, `interp.instruments.ctc_lexicon`); with a `wordlist` also
    open-vocabulary (a large word list with a unigram prior, `interp.instruments.ctc_open`).
    With `phonemes` its characters are phoneme units: every decode searches spellings and the
    pronunciation table turns them into words (`interp.instruments.ctc_phonemes`)."""

    def __init__(self, model: Wav2Vec2ForCTC, tokenizer: Wav2Vec2CTCTokenizer,
                 frontend: Frontend | None = None, lexicon: Lexicon | None = None,
                 wordlist: WordList | None = None, open_cfg: OpenBeamConfig | None = None,
                 phonemes: Pronunciations | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.frontend = frontend or Frontend()
        self.phonemes = phonemes
        self.lexicon = lexicon
        self.open_cfg = open_cfg or OpenBeamConfig()
        self.wordlist = wordlist

    @property
    def wordlist(self) -> WordList | None:
        return self._wordlist

    @wordlist.setter
    def wordlist(self, words: WordList | None) -> None:
        """Setting the word list (or `open_cfg` first, then this) rebuilds the open decoder. A
        phoneme recogniser searches its pronunciation table's spellings instead, whose priors
        came from the list the table was built with."""
        self._wordlist, self._open = words, None
        if words is not None:
            searched = words if self.phonemes is None else self.phonemes.wordlist()
            self._open = OpenDecoder(searched, self.tokenizer.get_vocab(),
                                     blank=self.tokenizer.pad_token,
                                     delimiter=self.tokenizer.word_delimiter_token,
                                     cfg=self.open_cfg)

    @property
    def lexicon(self) -> Lexicon | None:
        return self._lexicon_words

    @lexicon.setter
    def lexicon(self, lexicon: Lexicon | None) -> None:
        """Setting the lexicon (also after construction, as training does) rebuilds its decoder."""
        self._lexicon_words, self._decoder = lexicon, None
        if lexicon is not None:
            words = lexicon.words
            if self.phonemes is not None:  # the trie holds their spellings
                words = [s for w in words for s in self.phonemes.spellings.get(w, [])]
            self._decoder = LexiconDecoder(words, self.tokenizer.get_vocab(),
                                           blank=self.tokenizer.pad_token,
                                           delimiter=self.tokenizer.word_delimiter_token)

    @torch.no_grad()
    def log_probs(self, audio: np.ndarray) -> list[np.ndarray]:
        """(frames, vocab) log-probabilities of each CHUNK_S piece of a 16 kHz clip."""
        step = int(CHUNK_S * SAMPLE_RATE)
        out = []
        for i in range(0, len(audio), step):
            chunk = audio[i: i + step]
            if len(chunk) < 800:  # < 50 ms: nothing to hear, and too short for the convolutions
                continue
            logits = self.model(torch.from_numpy(self.frontend(chunk))[None]).logits[0]
            out.append(torch.log_softmax(logits.float(), -1).numpy())
        return out

    def align(self, audio: np.ndarray, words: Sequence[str]) -> list[tuple[float, float] | None] | None:
        """(start, end) seconds of each of `words` (the transcript, in order) in a 16 kHz clip, by
        CTC forced alignment (`interp.instruments.ctc_align`) of its letters, the word delimiter
        between words; None for a word with no letter the recogniser can spell (a digit, a
        symbol). None overall when nothing can be aligned: no spellable letter, or more letters
        than the clip has frames."""
        vocab = self.tokenizer.get_vocab()
        delim = vocab[self.tokenizer.word_delimiter_token]
        targets: list[int] = []
        owner: list[int] = []
        for i, word in enumerate(words):
            for part in normalize_text(word).split():  # "well-known" is two words to the model
                spelt = part if self.phonemes is None else self.phonemes.spell_word(part)
                ids = [vocab[c] for c in spelt if c in vocab]
                if targets and ids:
                    targets.append(delim)
                    owner.append(-1)
                targets += ids
                owner += [i] * len(ids)
        lps = self.log_probs(np.asarray(audio, np.float32))
        if not targets or not lps:
            return None
        step = int(CHUNK_S * SAMPLE_RATE)
        starts = []  # start time of every frame, chunk after chunk (as log_probs cut the clip)
        for k, lp in enumerate(lps):
            seconds = min(step, len(audio) - k * step) / SAMPLE_RATE
            starts.append(k * CHUNK_S + np.arange(len(lp) + 1) * seconds / len(lp))
        edges = np.concatenate([s[:-1] for s in starts] + [starts[-1][-1:]])
        path = forced_align(np.concatenate(lps), targets, vocab[self.tokenizer.pad_token])
        if path is None:
            return None
        return [None if span is None else (float(edges[span[0]]), float(edges[span[1]]))
                for span in word_spans(path, owner, len(words))]

    def label(self, text: str) -> str:
        """A transcript as the recogniser spells it (its CTC training target)."""
        return normalize_text(text) if self.phonemes is None else self.phonemes.label(text)

    def _words(self, spelt: str, among: set[str] | None = None) -> str:
        """A decoded character string as words (phoneme spellings through the table)."""
        return spelt if self.phonemes is None else self.phonemes.words(spelt, among)

    def _greedy(self, lp: np.ndarray) -> str:
        return self._words(self.tokenizer.decode(lp.argmax(-1).tolist()))

    def _lexicon(self, lp: np.ndarray) -> str:
        text = self._decoder.decode(lp)
        if text is not None:
            return self._words(text, self.lexicon.known)
        # No all-known-words reading fits (an out-of-lexicon word): snap the greedy one instead.
        return self.lexicon.correct(self._greedy(lp))

    def readings(self, wav: np.ndarray, sr: int = SAMPLE_RATE, open_vocab: bool = True,
                 wordlist: bool = False) -> dict[str, str]:
        """Every transcript of one forward pass: `greedy`; `lexicon` (the grammar lexicon's; the
        greedy one without a lexicon); with a word list, `open_vocab` adds `open` (may spell
        unlisted words) and `wordlist` adds the listed-words-only reading (a second search)."""
        audio, _ = prepare_audio(wav, sr)
        keys = ["greedy", "lexicon"]
        if self._open is not None:
            keys += (["open"] if open_vocab else []) + (["wordlist"] if wordlist else [])
        if is_silent(audio):  # no sound: nothing to transcribe (CTC would still emit letters)
            return dict.fromkeys(keys, "")
        lps = self.log_probs(audio)
        out = {"greedy": normalize_text(" ".join(self._greedy(lp) for lp in lps))}
        out["lexicon"] = (out["greedy"] if self._decoder is None else
                          normalize_text(" ".join(self._lexicon(lp) for lp in lps)))
        for key, oov in (("open", True), ("wordlist", False)):
            if key in keys:
                out[key] = self.read_open(lps, oov)
        return out

    def read_open(self, lps: list[np.ndarray], allow_oov: bool = True) -> str:
        """The open-vocabulary reading of a clip's `log_probs` (`allow_oov` False: listed words
        only, falling back to the open one where none fits), as words."""
        return normalize_text(" ".join(self._open_read(lp, allow_oov) for lp in lps))

    def _open_read(self, lp: np.ndarray, allow_oov: bool) -> str:
        """Open decode; the listed-words-only one falls back to it when no listed reading fits."""
        text = self._open.decode(lp, allow_oov=allow_oov)
        text = text if text is not None else (self._open.decode(lp, allow_oov=True) or "")
        return self._words(text)

    def transcribe_both(self, wav: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[str, str]:
        """(greedy transcript, lexicon-constrained transcript) from one forward pass; without a
        lexicon both are the greedy one."""
        r = self.readings(wav, sr, open_vocab=False)
        return r["greedy"], r["lexicon"]

    def transcribe(self, wav: np.ndarray, sr: int = SAMPLE_RATE, lexicon: bool = False) -> str:
        """Greedy transcript, or the lexicon-constrained one (`lexicon=True`, when shipped)."""
        return self.transcribe_both(wav, sr)[1 if lexicon else 0]

    def save(self, folder: str | Path, half: bool = False) -> None:
        """The recogniser's folder; `half`: its weights in fp16 (half the bytes a shipped copy
        puts in every clone; `load` computes in fp32 either way)."""
        folder = Path(folder)
        (copy.deepcopy(self.model).half() if half else self.model).save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True,
                                 return_attention_mask=True).save_pretrained(folder)
        if self.frontend.kind != "waveform":
            (folder / FRONTEND).write_text(json.dumps(asdict(self.frontend), indent=1) + "\n")
        if self.lexicon is not None:
            (folder / LEXICON).write_text("\n".join(self.lexicon.words) + "\n")
        if self.wordlist is not None:
            self.wordlist.save(folder / WORDLIST)
        if self.phonemes is not None:
            self.phonemes.save(folder)
        if self.open_cfg != OpenBeamConfig():
            write_open_decode(folder, self.open_cfg)

    @classmethod
    def load(cls, folder: str | Path) -> Recognizer:
        folder = Path(folder)
        require_files(folder, ("config.json", "vocab.json"), NAME)
        if not any((folder / f).exists() for f in ("model.safetensors", "pytorch_model.bin")):
            require_files(folder, ("model.safetensors",), NAME)
        # fp32 whatever the stored precision (the open ears ship in half precision to halve
        # what every clone carries; transformers would otherwise keep the stored dtype)
        model = Wav2Vec2ForCTC.from_pretrained(folder, dtype=torch.float32)
        tok = Wav2Vec2CTCTokenizer.from_pretrained(folder)
        front, pre, lex = folder / FRONTEND, folder / "preprocessor_config.json", folder / LEXICON
        lexicon = Lexicon(lex.read_text().split()) if lex.exists() else None
        words = WordList.load(folder / WORDLIST) if (folder / WORDLIST).exists() else None
        phonemes = Pronunciations.load(folder)
        tuned = folder / OPEN_DECODE  # `python -m interp.instruments.evaluate --tune --keep-best`
        open_cfg = OpenBeamConfig(**json.loads(tuned.read_text())) if tuned.exists() else None
        if front.exists():
            frontend = Frontend(**json.loads(front.read_text()))
        else:
            do_norm = json.loads(pre.read_text()).get("do_normalize", True) if pre.exists() else True
            frontend = Frontend("waveform", do_normalize=bool(do_norm))
        return cls(model, tok, frontend, lexicon, words, open_cfg=open_cfg, phonemes=phonemes)


def write_open_decode(folder: str | Path, cfg: OpenBeamConfig) -> Path:
    """The open decode's weights, stored with the recogniser in `folder` (OPEN_DECODE), which
    `Recognizer.load` decodes with."""
    path = Path(folder) / OPEN_DECODE
    write_json(path, asdict(cfg))
    return path


def load_recognizer(folder: str | Path):  # noqa: ANN201
    """The content instrument in `folder`: the CTC `Recognizer` (the shipped kind), or a local
    Whisper checkpoint (`interp.instruments.whisper_asr`), by its config's model type."""
    from interp.instruments.whisper_asr import WhisperRecognizer, is_whisper

    return WhisperRecognizer.load(folder) if is_whisper(folder) else Recognizer.load(folder)


def new_recognizer(cfg: AsrConfig, folder: Path,
                   phonemes: Pronunciations | None = None) -> Recognizer:
    """A recogniser from scratch: letters, or the units of `phonemes` (needed when
    `cfg.units` is phonemes)."""
    if (cfg.units == "phonemes") != (phonemes is not None):
        raise ValueError(f"--units {cfg.units}: a phoneme recogniser needs its pronunciation "
                         "table, a letter one none")
    vocab = VOCAB if phonemes is None else phonemes.vocab()
    return Recognizer(Wav2Vec2ForCTC(model_config(cfg, len(vocab))), new_tokenizer(folder, vocab),
                      Frontend(cfg.frontend, cfg.n_mels), phonemes=phonemes)


def with_phoneme_head(rec: Recognizer, phonemes: Pronunciations, folder: Path) -> Recognizer:
    """A letter recogniser continued as a phoneme one: its front end, convolutions and
    transformer (what it learnt to hear) kept, a fresh CTC head over `phonemes`' units."""
    vocab = phonemes.vocab()
    config = copy.deepcopy(rec.model.config)
    config.vocab_size = len(vocab)
    model = Wav2Vec2ForCTC(config)
    kept = {k: v for k, v in rec.model.state_dict().items() if not k.startswith("lm_head.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("lm_head.") for k in missing), (missing, unexpected)
    return Recognizer(model, new_tokenizer(folder, vocab), rec.frontend, phonemes=phonemes,
                      open_cfg=rec.open_cfg)


def _bucket(rows: list[dict], rng: np.random.Generator, seconds: float) -> list[dict]:
    """Utterances of similar length (neighbours in duration order) filling `seconds`."""
    i = int(rng.integers(len(rows)))
    window = rows[max(0, i - 64): i + 64]
    n = max(1, int(seconds / max(r["duration"] for r in window)))
    return [window[k] for k in rng.choice(len(window), min(n, len(window)), replace=False)]


def train(rec: Recognizer, pool: ClipPool, cfg: AsrConfig, extra: ClipPool | None = None) -> dict:
    """CTC on length-bucketed batches of whole utterances; a `cfg.extra_share` of the batches
    come from `extra` (e.g. open-domain speech beside the grammar corpus) when given."""
    rng = np.random.default_rng(cfg.seed)
    aug = Augment(speed=0.1)
    pools = [(p, sorted(p.rows, key=lambda r: r["duration"]),
              sorted(p.rt_rows, key=lambda r: r["duration"])) for p in (pool, extra) if p]
    tok = rec.tokenizer

    def step_loss(step: int) -> torch.Tensor:
        src, by_len, rt_by_len = pools[int(len(pools) > 1 and rng.random() < cfg.extra_share)]
        use_rt = bool(rt_by_len) and rng.random() < src.roundtrip_frac
        rows = _bucket(rt_by_len if use_rt else by_len, rng, cfg.batch_seconds)
        xs, labels = [], []
        for r in rows:
            audio = src.audio(r, use_rt)
            xs.append(rec.frontend(augment(audio, rng, aug)[0]))
            labels.append(tok(rec.label(r["text_plain"])).input_ids)
        lens = [len(x) for x in xs]
        x = torch.zeros(len(xs), max(lens))
        mask = torch.zeros(len(xs), max(lens), dtype=torch.long)
        y = torch.full((len(xs), max(map(len, labels))), -100)
        for k, (a, lab) in enumerate(zip(xs, labels, strict=True)):
            x[k, : len(a)], mask[k, : len(a)] = torch.from_numpy(a), 1
            y[k, : len(lab)] = torch.tensor(lab)
        return rec.model(x, attention_mask=mask, labels=y).loss

    return fit(rec.model, step_loss, LoopConfig(cfg.steps, cfg.lr, cfg.warmup, cfg.max_minutes),
               desc="train asr")


def evaluate(rec: Recognizer, clips: list[tuple[np.ndarray, dict]], n_examples: int = 5,
             open_vocab: bool = False) -> dict:
    """Corpus WER/CER of greedy transcripts against `text_plain` (and of lexicon-constrained ones
    when the recogniser has a lexicon; with `open_vocab` and a word list also of the open and
    word-list decodes), plus a few examples. Control: `shuffled_reference_wer` scores the same
    transcripts against another clip's text (chance level for this grammar)."""
    reads = [rec.readings(a, open_vocab=open_vocab, wordlist=open_vocab)
             for a, _ in tqdm(clips, desc="transcribe", leave=False)]
    return score_readings([r["text_plain"] for _, r in clips], reads, rec.lexicon is not None,
                          n_examples)


def score_readings(refs: list[str], reads: list[dict[str, str]], lexicon: bool = True,
                   n_examples: int = 5) -> dict:
    """The figures `evaluate` reports, from reference texts and each clip's `readings`."""
    hyps = [r["greedy"] for r in reads]
    shuffled = refs[1:] + refs[:1]
    out = corpus_error_rates(refs, hyps)
    out["shuffled_reference_wer"] = corpus_error_rates(shuffled, hyps)["wer"]
    extra = [("lexicon_corrected", "lexicon")] if lexicon else []
    extra += [(k, k) for k in ("wordlist", "open") if reads and k in reads[0]]
    for name, key in extra:
        got = [r[key] for r in reads]
        out[name] = corpus_error_rates(refs, got)
        out[name]["shuffled_reference_wer"] = corpus_error_rates(shuffled, got)["wer"]
    out["examples"] = [{"ref": normalize_text(ref), "hyp": r["greedy"], "corrected": r["lexicon"],
                        **{k: r[k] for k in ("open",) if k in r}}
                       for ref, r in list(zip(refs, reads, strict=True))[:n_examples]]
    return out
