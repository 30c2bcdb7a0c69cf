"""A phoneme text front end for TinyCosy: text → espeak-ng phonemes → one token per phoneme.

With the byte-level BPE, each content word is one token whose embedding must learn the word's
whole sound from the few hundred utterances it occurs in; with phonemes, every word is spelled in
~50 symbols the model sees in every sentence. Tags (`[laughter]`), `<|endofprompt|>` and
punctuation stay tokens of their own; `|` marks a word boundary.

The phonemes are espeak-ng's ASCII names in one reference voice (en-us), whatever the speaker's
accent: the prompt carries the accent. espeak-ng is needed at inference too, as for the corpus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Encoding, Tokenizer, models, pre_tokenizers

FRONTEND_FILE = "text_frontend.json"
VOICE = "en-us"
WORD_BOUNDARY = "|"
UNK = "[UNK]"
# specials and tags, punctuation; the runs of words between them are phonemized whole, so that
# espeak-ng reads each word in context ("a" is /a#/, not the letter's name)
_MARKS = re.compile(r"(<\|[a-z]+\|>|\[[a-z_]+\]|[.,!?;:])")


def run_phonemes(words: str) -> tuple[tuple[str, ...], ...]:
    """espeak-ng's phonemes of a run of words in the reference voice, one tuple per word."""
    from interp.corpus.espeak import run_phonemes as phonemize

    return phonemize(words, VOICE)


def phoneme_symbols(text: str) -> list[tuple[str, tuple[int, int]]]:
    """`text` as phoneme symbols, each with the character span in `text` of the word (or
    special, tag, punctuation mark) it stands for; `|` between words, with an empty span. Where
    espeak-ng splits a run into another number of words than it has (numbers, abbreviations),
    the run's symbols all carry the run's span."""
    out: list[tuple[str, tuple[int, int]]] = []
    pos = 0
    for piece in _MARKS.split(text):
        start, pos = pos, pos + len(piece)
        if _MARKS.fullmatch(piece):
            out.append((piece, (start, pos)))
            continue
        words = piece.strip()
        if not words:
            continue
        spoken = run_phonemes(words)
        spans = [(start + m.start(), start + m.end()) for m in re.finditer(r"\S+", piece)]
        if len(spans) != len(spoken):
            spans = [(start + len(piece) - len(piece.lstrip()),
                      start + len(piece.rstrip()))] * len(spoken)
        for word, span in zip(spoken, spans, strict=True):
            if out and out[-1][0][0] not in "[<":  # not at the start, nor after a special or tag
                out.append((WORD_BOUNDARY, (span[0], span[0])))
            out += [(sym, span) for sym in word]
    return out


def to_phonemes(text: str) -> str:
    """`text` as space-separated phoneme symbols, `|` between words; specials, tags and
    punctuation kept as they are."""
    return " ".join(sym for sym, _ in phoneme_symbols(text))


class PhonemeTokenizer:
    """The phoneme front end with the interface TinyCosy's callers use of an HF `Tokenizer`
    (`encode(text).ids`, `decode`, `token_to_id`, `get_vocab_size`, `save`)."""

    def __init__(self, inner: Tokenizer):
        self.inner = inner

    def encode(self, text: str) -> Encoding:
        return self.inner.encode(to_phonemes(text))

    def char_offsets(self, text: str) -> list[tuple[int, int]]:
        """Per token of `encode(text)`, the character span in `text` of the word it spells (the
        BPE's `Encoding.offsets` are into the phoneme string instead): word labels such as the
        attention guide's need it."""
        return [span for _, span in phoneme_symbols(text)]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.inner.token_to_id(token)

    def get_vocab_size(self) -> int:
        return self.inner.get_vocab_size()

    def length_units(self, text: str) -> int:
        """Words in `text`: the unit generation's min/max length ratios are set for (CosyVoice's
        BPE has about one token per word; a phoneme tokenizer has four or five)."""
        return len(re.findall(r"[A-Za-z0-9']+", _MARKS.sub(" ", text)))

    def save(self, path: str) -> None:
        """`path` is the tokenizer.json; the front end's marker goes next to it."""
        self.inner.save(path)
        (Path(path).parent / FRONTEND_FILE).write_text(json.dumps({"frontend": "phonemes",
                                                                  "voice": VOICE}))


def train_phoneme_tokenizer(texts: Iterable[str], specials: Iterable[str]) -> PhonemeTokenizer:
    """A word-level vocabulary over the phoneme symbols of `texts` (plus `specials`)."""
    symbols: set[str] = set()
    for t in texts:
        symbols.update(to_phonemes(t).split())
    specials = [UNK, *specials]
    vocab = {s: i for i, s in enumerate(specials + sorted(symbols - set(specials)))}
    inner = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    inner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    inner.add_special_tokens(specials)
    return PhonemeTokenizer(inner)


def frontend_of(folder: str | Path) -> str:
    """The text front end a model folder was trained with: phonemes or bpe."""
    return "phonemes" if (Path(folder) / FRONTEND_FILE).exists() else "bpe"
