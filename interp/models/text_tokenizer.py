"""The text tokenizer of TinyCosy: a byte-level BPE trained by the project with HF `tokenizers`.

`[laughter]`, `[breath]`, `<|endofprompt|>` and the other specials are single tokens, as in
CosyVoice3's tokenizer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from interp.models.phonemes import FRONTEND_FILE, UNK, PhonemeTokenizer, frontend_of

log = logging.getLogger(__name__)
MAX_UNKNOWN_SHARE = 0.3  # above this share of unknown characters a text is refused

SPECIAL_TOKENS = ("<|endoftext|>", "<|endofprompt|>", "[laughter]", "[breath]")
SYSTEM_PROMPT = "You are a helpful assistant."
FILE = "tokenizer.json"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def load_tokenizer(folder: str | Path) -> Tokenizer | PhonemeTokenizer:
    """The folder's text tokenizer: the BPE, or the phoneme front end where the folder says so."""
    path = Path(folder) / FILE
    if not path.exists():
        raise FileNotFoundError(f"no text tokenizer at {path}; train TinyCosy first "
                                "(`python -m interp.models.train`)")
    try:
        inner = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception on bad JSON
        raise ValueError(f"{path} is corrupt or truncated ({str(exc)[:120]}); restore it from "
                         "the model's export") from None
    return PhonemeTokenizer(inner) if frontend_of(folder) == "phonemes" else inner


def save_tokenizer(tokenizer: Tokenizer | PhonemeTokenizer, folder: str | Path) -> None:
    """Write `folder`/tokenizer.json, with the phoneme front end's marker or without any stale one
    (a BPE exported over a phoneme model's folder must not be read as phonemes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not isinstance(tokenizer, PhonemeTokenizer):
        (folder / FRONTEND_FILE).unlink(missing_ok=True)
    tokenizer.save(str(folder / FILE))


def length_units(tokenizer: Tokenizer | PhonemeTokenizer, text: str) -> int:
    """Length of `text` in the units generation's min/max length ratios are set for: tokens of
    the BPE (about one per word), words for the phoneme front end. Text the tokenizer cannot
    represent is refused (`check_representable`)."""
    check_representable(tokenizer, text)
    if isinstance(tokenizer, PhonemeTokenizer):
        return tokenizer.length_units(text)
    return len(tokenizer.encode(text).ids)


def unknown_characters(tokenizer: Tokenizer | PhonemeTokenizer, text: str) -> list[str]:
    """The characters of `text` (spaces aside) the tokenizer never learnt: for the byte-level BPE,
    characters no vocabulary entry holds (they reach the model as raw bytes, e.g. emoji or a
    script it was not trained on); for the phoneme front end, the characters of words that
    become [UNK] or no phoneme at all."""
    chars = [c for c in text if not c.isspace()]
    if isinstance(tokenizer, PhonemeTokenizer):
        unk = tokenizer.token_to_id(UNK)
        bad = [w for w in text.split()
               if not (ids := tokenizer.encode(w).ids) or unk in ids]
        return [c for w in bad for c in w]
    known = vocab_characters(tokenizer)
    return [c for c in chars if c not in known]


def check_representable(tokenizer: Tokenizer | PhonemeTokenizer, text: str) -> None:
    """Refuse text that is mostly characters the tokenizer cannot represent; warn about a few."""
    chars = [c for c in text if not c.isspace()]
    bad = unknown_characters(tokenizer, text)
    if not bad:
        return
    shown = "".join(dict.fromkeys(bad))[:20]
    if len(bad) > MAX_UNKNOWN_SHARE * len(chars):
        raise ValueError(f"the text tokenizer cannot represent this text ({len(bad)} of "
                         f"{len(chars)} characters unknown to it, e.g. {shown!r}): the model "
                         "was trained on English; write the text in Latin letters")
    log.warning("%d character(s) the text tokenizer never saw (%r) will be spoken as noise",
                len(bad), shown)


@lru_cache(maxsize=8)
def vocab_characters(tokenizer: Tokenizer) -> frozenset[str]:
    """Every character some vocabulary entry of a byte-level BPE spells out whole."""
    to_byte = {c: b for b, c in enumerate(_byte_alphabet())}
    out: set[str] = set()
    for token in tokenizer.get_vocab():
        raw = bytes(to_byte[c] for c in token if c in to_byte)
        out.update(raw.decode("utf-8", errors="ignore"))
    return frozenset(out)


def _byte_alphabet() -> list[str]:
    """GPT-2's byte → printable character table (HF ByteLevel), indexed by byte value."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def lm_text(text: str, prompt_text: str = "", instruction: str | None = None) -> str:
    """CosyVoice3's text part: system prompt and instruction, `<|endofprompt|>`, prompt text, text."""
    if not text.strip():
        raise ValueError("empty text: give at least one word to speak")
    head = f"{SYSTEM_PROMPT} {instruction}" if instruction else SYSTEM_PROMPT
    body = f"{prompt_text} {text}" if prompt_text else text
    return f"{head}<|endofprompt|>{body}"
