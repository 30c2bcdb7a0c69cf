"""The text tokenizer of TinyCosy: a byte-level BPE trained by the project with HF `tokenizers`.

`[laughter]`, `[breath]`, `<|endofprompt|>` and the other specials are single tokens, as in
CosyVoice3's tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from interp.models.phonemes import FRONTEND_FILE, PhonemeTokenizer, frontend_of

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
    inner = Tokenizer.from_file(str(path))
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
    the BPE (about one per word), words for the phoneme front end."""
    if isinstance(tokenizer, PhonemeTokenizer):
        return tokenizer.length_units(text)
    return len(tokenizer.encode(text).ids)


def lm_text(text: str, prompt_text: str = "", instruction: str | None = None) -> str:
    """CosyVoice3's text part: system prompt and instruction, `<|endofprompt|>`, prompt text, text."""
    if not text.strip():
        raise ValueError("empty text: give at least one word to speak")
    head = f"{SYSTEM_PROMPT} {instruction}" if instruction else SYSTEM_PROMPT
    body = f"{prompt_text} {text}" if prompt_text else text
    return f"{head}<|endofprompt|>{body}"
