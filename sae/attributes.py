"""Ground-truth attributes of every held-out position, as one sparse boolean matrix.

Columns are named predicates (`tag:laughter`, `gender:female`, `word:pencil`, `phone:s`,
`token:the`, `modality:speech`, …). Acoustic attributes hold on *speech* positions only and read
the utterance whose waveform the position sounds in (`src_utt`: the prompt utterance for prompt
speech), at the middle of the position's 40 ms span. With the matrix, matching 2048 latents
against every attribute is one sparse product.

`phone:X` is the sound being spoken: espeak-ng's phonemes of the word (in the utterance's accent
when it names an espeak voice), spread evenly over the word's timed span — the corpus has word
timings, not phoneme timings, so a phone's edges are approximate to a position or two. What an
audio latent most often is, in the words a person would use ("fires on /s/").
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from interp.concepts import (
    LABEL,
    PLANTED_COLUMNS,
    PLANTED_PREFIXES,
    as_text,
    label_attribute,
    row_label_columns,
)

TEXT, SPEECH, SPECIAL = 0, 1, 2
EDGE_S = 0.2  # speech this close to an utterance's start/end counts as its start/end
TIME_BINS = (0.0, 0.5, 1.0, 2.0, 4.0)  # seconds into the waveform (speech positions)
INDEX_BINS = (0, 4, 8, 16, 32)  # index of a text token within its sequence's text
_WORD_RE = re.compile(r"[^a-z0-9']+")

# Planted concepts: the attributes the corpus was built to contain (speech positions only): tag
# spans, gender, accent and rate, and an imported corpus's own label columns
# (`label:style=whisper`), from the concept registry (interp.concepts).
ATTRIBUTE_COLUMNS = (*((col, kind) for kind, col in PLANTED_COLUMNS.items()), ("voice_id", "voice"))


@dataclass
class Attributes:
    names: list[str]
    matrix: sp.csc_matrix  # (N, n_attr) bool

    def __post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}

    def column(self, name: str) -> np.ndarray:
        """(N,) bool of one attribute."""
        j = self.index[name]
        out = np.zeros(self.matrix.shape[0], bool)
        out[self.matrix.indices[self.matrix.indptr[j] : self.matrix.indptr[j + 1]]] = True
        return out

    def planted(self) -> list[str]:
        return [n for n in self.names if n.startswith(PLANTED_PREFIXES)]


def describe(name: str) -> str:
    """Plain words for an attribute; the offline label is "[annotations] " + this."""
    kind, _, value = name.partition(":")
    sp_ = "speech positions"
    return {
        "tag": f"{value} ({sp_} inside a [{value}] span)",
        "gender": f"{value} voice ({sp_} of a {value} speaker)",
        "accent": f"accent {value} ({sp_} of an {value} voice)",
        "voice": f"the voice {value} ({sp_} of that speaker)",
        "rate": f"{value} speech rate ({sp_} of a {value}-rate utterance)",
        "word": f"the spoken word '{value}' ({sp_} inside it)",
        "phone": f"the sound /{value}/ ({sp_} inside it, espeak-ng's phonemes spread over the "
                 "word)",
        "token": f"the text token '{value}'",
        "modality": f"any {value} position",
        "special": f"the special token {value}",
        "silence": f"silence ({sp_} outside every word and tag)",
        "speech": f"{value} speech ({sp_} of the {'prompt' if value == 'prompt' else 'target'} "
                  "utterance)",
        "edge": f"utterance {value} ({sp_} within {EDGE_S:g} s of the utterance's {value})",
        LABEL: "{1} {2} ({0} of an utterance whose {1} is {2})".format(
            sp_, *value.partition("=")[::2]),
        "text": f"{value} text (text positions of the {value})",
        "time": f"speech {value} s into the waveform",
        "code": f"speech code {value} (speech positions whose input token is code {value})",
        "index": f"text tokens {value} of the sequence's text",
    }.get(kind, name)


def describe_union(names: list[str]) -> str:
    """Plain words for an OR of attributes (codes listed compactly)."""
    if len(names) == 1:
        return describe(names[0])
    values = [n.partition(":")[2] for n in names]
    if all(n.startswith("code:") for n in names):
        return (f"speech codes {', '.join(values[:-1])} or {values[-1]} (speech positions whose "
                "input token is one of them)")
    return " or ".join(describe(n) for n in names)


def norm_word(w: str) -> str:
    return _WORD_RE.sub("", w.lower())


_STRESS = str.maketrans("", "", "',")


@lru_cache(maxsize=65536)
def word_phones(word: str, voice: str) -> tuple[str, ...]:
    """espeak-ng's phonemes of one word in `voice`, stress marks and variant marks (`@2`, `I#`)
    dropped; () when espeak-ng cannot be used (the phone attributes are then left out)."""
    from interp.corpus.espeak import run_phonemes

    try:
        runs = run_phonemes(word, voice)
    except (OSError, RuntimeError, ValueError) as exc:
        if voice != "en-us":  # not an espeak voice (an imported corpus's accent label)
            return word_phones(word, "en-us")
        logging.getLogger(__name__).warning("no phone attributes: espeak-ng (%s)", exc)
        return ()
    return tuple(p.translate(_STRESS).rstrip("2#") or p for run in runs for p in run)


def _phone_columns(cols: dict[str, list[np.ndarray]], pos: np.ndarray, tmid: np.ndarray,
                   word: dict, voice: str) -> None:
    """The positions of one timed word split among its phones, evenly over its span."""
    phones = word_phones(norm_word(word["word"]), voice)
    inside = (tmid >= word["start"]) & (tmid < word["end"])
    if not phones or not inside.any():
        return
    frac = (tmid[inside] - word["start"]) / max(word["end"] - word["start"], 1e-6)
    which = np.minimum((frac * len(phones)).astype(int), len(phones) - 1)
    for k, phone in enumerate(phones):
        cols[f"phone:{phone}"].append(pos[inside][which == k])


def _speech_columns(meta: dict[str, np.ndarray], rows: list[dict]) -> dict[str, list[np.ndarray]]:
    """Acoustic attributes, utterance by utterance of the waveforms positions sound in."""
    cols: dict[str, list[np.ndarray]] = defaultdict(list)
    labels = row_label_columns(rows)
    speech = np.flatnonzero(meta["modality"] == SPEECH)
    src = meta["src_utt"][speech]
    order = np.argsort(src, kind="stable")
    bounds = np.flatnonzero(np.diff(src[order])) + 1
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        pos = speech[group]
        row = rows[int(src[group[0]])]
        tmid = (meta["t0"][pos] + meta["t1"][pos]) / 2
        for key, attr in ATTRIBUTE_COLUMNS:
            if row.get(key):
                cols[f"{attr}:{row[key]}"].append(pos)
        for key in labels:
            if as_text(row.get(key)):
                cols[label_attribute(key, row[key])].append(pos)
        covered = np.zeros(len(pos), bool)
        for tag in row.get("tags") or []:
            inside = (tmid >= tag["start"]) & (tmid < tag["end"])
            cols[f"tag:{tag['tag']}"].append(pos[inside])
            covered |= inside
        for w in row.get("words") or []:
            inside = (tmid >= w["start"]) & (tmid < w["end"])
            if w.get("timed", True) and inside.any() and norm_word(w["word"]):
                cols[f"word:{norm_word(w['word'])}"].append(pos[inside])
                _phone_columns(cols, pos, tmid, w, as_text(row.get("accent")) or "en-us")
                covered |= inside
        cols["silence"].append(pos[~covered])
        cols["edge:start"].append(pos[tmid < EDGE_S])
        cols["edge:end"].append(pos[tmid > row["duration"] - EDGE_S])
    codes = meta["token"][speech]
    for code in np.unique(codes):  # the acoustic unit (k-means code) the position reads
        cols[f"code:{int(code)}"].append(speech[codes == code])

    is_prompt = meta["src_utt"][speech] != meta["utt"][speech]
    cols["speech:prompt"].append(speech[is_prompt])
    cols["speech:target"].append(speech[~is_prompt])
    return cols


def _text_columns(meta: dict[str, np.ndarray], token_text: dict[int, str],
                  end_of_prompt: int | None) -> dict[str, list[np.ndarray]]:
    cols: dict[str, list[np.ndarray]] = defaultdict(list)
    text = np.flatnonzero(meta["modality"] == TEXT)
    tokens = meta["token"][text]
    for tok in np.unique(tokens):
        word = token_text.get(int(tok), "").strip().lower()
        if word:
            cols[f"token:{word}"].append(text[tokens == tok])
    if end_of_prompt is not None:
        # the system prompt and instruction run up to <|endofprompt|>, the spoken text after it
        seq = meta["seq"][text]
        marks = text[tokens == end_of_prompt]
        cut = np.full(seq.max() + 1 if len(seq) else 0, -1)
        cut[meta["seq"][marks]] = meta["position"][marks]
        head = meta["position"][text] <= cut[seq]
        cols["text:instruction"].append(text[head])
        cols["text:transcript"].append(text[~head])
    return cols


def _bins(values: np.ndarray, edges: tuple, fmt: str) -> dict[str, np.ndarray]:
    """Bin index → name like "1-2"; the last bin is open ("4+")."""
    which = np.searchsorted(np.asarray(edges), values, side="right") - 1
    names = [f"{fmt}{lo:g}-{hi:g}" for lo, hi in zip(edges, edges[1:], strict=False)]
    names.append(f"{fmt}{edges[-1]:g}+")
    return {names[b]: which == b for b in range(len(edges))}


def _position_columns(meta: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Position in the utterance: time into the waveform, index into the text."""
    cols: dict[str, list[np.ndarray]] = defaultdict(list)
    speech = np.flatnonzero(meta["modality"] == SPEECH)
    for name, mask in _bins(meta["t0"][speech], TIME_BINS, "time:").items():
        cols[name].append(speech[mask])
    text = np.flatnonzero(meta["modality"] == TEXT)
    # the first text token sits at position 1, after [sos]
    for name, mask in _bins(meta["position"][text] - 1, INDEX_BINS, "index:").items():
        cols[name].append(text[mask])
    return cols


def build_attributes(meta: dict[str, np.ndarray], rows: list[dict], token_text: dict[int, str],
                     end_of_prompt: int | None = None, min_count: int = 1) -> Attributes:
    """The (positions × attributes) matrix; attributes seen fewer than `min_count` times are
    dropped, except planted ones (a rare concept is still a concept)."""
    n = len(meta["modality"])
    cols: dict[str, list[np.ndarray]] = defaultdict(list)
    for code, name in ((TEXT, "text"), (SPEECH, "speech"), (SPECIAL, "special")):
        cols[f"modality:{name}"].append(np.flatnonzero(meta["modality"] == code))
    special = meta["modality"] == SPECIAL
    cols["special:sos"].append(np.flatnonzero(special & (meta["position"] == 0)))
    cols["special:task_id"].append(np.flatnonzero(special & (meta["position"] > 0)))
    for extra in (_speech_columns(meta, rows), _text_columns(meta, token_text, end_of_prompt),
                  _position_columns(meta)):
        for k, v in extra.items():
            cols[k].extend(v)
    names, indices = [], []
    for name in sorted(cols):
        idx = np.unique(np.concatenate(cols[name])).astype(np.int64)
        if len(idx) >= min_count or (name.startswith(PLANTED_PREFIXES) and len(idx)):
            names.append(name)
            indices.append(idx)
    counts = np.array([len(i) for i in indices], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    data = np.ones(int(indptr[-1]), bool)
    all_idx = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    return Attributes(names, sp.csc_matrix((data, all_idx, indptr), shape=(n, len(names))))
