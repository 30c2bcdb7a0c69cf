"""Probe data: the speech positions of one or two activation stores, their ground-truth concept
labels from the corpus table, train / test samples, and their activations at a layer.

A position's labels are those of the waveform it sounds in (`src_utt`): the speaker's gender,
accent and rate bin (or the value of any other column of the corpus named as a concept), and
laughter when its token span [t0, t1) overlaps a `laughter` tag span. A concept of your own
(`interp.concepts`, `--concept NAME --groups POS [NEG]`) labels a position with the group it is
in; positions in neither group are left out of its samples.
Training positions are those of `train`-split utterances, test positions those of
`heldout_voices` utterances, so every probe is scored on voices it never saw; positions of other
splits (`heldout_sentences`: seen voices) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from interp.concepts import (
    PROBE_COLUMNS,
    PROBE_LAUGHTER,
    PROBE_PRESETS,
    Concept,
    CorpusGroups,
    as_text,
    class_labels,
    span_overlap,
)
from interp.corpus.table import TABLE, load_table
from interp.store import MODALITY_CODES, ActivationStore, fingerprint

CONCEPTS = PROBE_PRESETS  # laughter, gender, accent, rate
TRAIN_SPLIT, TEST_SPLIT = "train", "heldout_voices"
ROW_LABEL = PROBE_COLUMNS


@dataclass(frozen=True)
class Positions:
    """Speech positions of the stores, one entry each (n positions)."""

    store: np.ndarray  # (n,) index into the list of stores
    shard: np.ndarray  # (n,) index into that store's shards
    row: np.ndarray  # (n,) row within the shard
    split: np.ndarray  # (n,) split of the position's utterance
    voice: np.ndarray  # (n,) voice the position sounds in
    labels: dict[str, np.ndarray]  # concept → (n,) str labels

    def __len__(self) -> int:
        return len(self.row)


def laughter_mask(t0: np.ndarray, t1: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    """(n,) bool: which token spans [t0, t1) overlap one of the (start, end) spans."""
    return span_overlap(t0, t1, spans)


def check_stores(stores: list[ActivationStore], corpus: str | Path) -> None:
    """Every store must come from the same model and hook, and from this corpus table (the
    labels are read from it by row index)."""
    table = fingerprint(Path(corpus) / TABLE)
    first = stores[0].manifest["spec"]
    for s in stores:
        spec = s.manifest["spec"]
        if spec["corpus"] != table:
            raise ValueError(f"{s.folder} was cached from another corpus than {corpus}; pass "
                             "the --corpus it came from")
        if (spec["model"], spec["hook"]) != (first["model"], first["hook"]):
            raise ValueError(f"{s.folder} and {stores[0].folder} come from different models or "
                             "hooks")


def labellers(concepts: Sequence[str | Concept], rows: list[dict], corpus: str | Path
              ) -> dict[str, Callable[[dict, np.ndarray], np.ndarray]]:
    """Concept name → fn(shard meta, speech mask) → (n,) str label of every position ('' where
    the concept does not apply). A name is a probe preset (laughter, gender, accent, rate) or
    any column of the corpus (one class per value); a `Concept` is its first target's two
    groups."""
    columns = list(rows[0]) if rows else []
    out: dict[str, Callable[[dict, np.ndarray], np.ndarray]] = {}
    for c in concepts:
        if isinstance(c, Concept) or c == "laughter":
            concept = c if isinstance(c, Concept) else PROBE_LAUGHTER
            groups = CorpusGroups(concept, rows, str(corpus), columns)
            out[concept.name] = partial(class_labels, concept, groups)
            continue
        column = PROBE_COLUMNS.get(c, c)
        if column not in columns:
            raise ValueError(f"unknown concept {c!r}: use {', '.join(CONCEPTS)}, a column of "
                             f"{corpus} ({', '.join(columns)}) or --concept NAME --groups ...")
        values = np.array([as_text(r.get(column)) for r in rows])
        out[c] = lambda meta, speech, v=values: v[meta["src_utt"]]
    return out


def speech_positions(stores: list[ActivationStore], corpus: str | Path,
                     concepts: Sequence[str | Concept] = CONCEPTS) -> Positions:
    """Every speech position of `stores` with its split, voice and concept labels."""
    rows = load_table(corpus)
    split = np.array([r["split"] for r in rows])
    voice = np.array([r["voice_id"] for r in rows])
    label_of = labellers(concepts, rows, corpus)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("store", "shard", "row", "utt", "src")}
    found: dict[str, list[np.ndarray]] = {c: [] for c in label_of}
    for si, store in enumerate(stores):
        for hi, name in enumerate(store.shards):
            meta = store.meta(name)
            speech = meta["modality"] == MODALITY_CODES["speech"]
            keep = np.nonzero(speech)[0]
            for c, fn in label_of.items():
                found[c].append(fn(meta, speech)[keep])
            for key, value in (("store", np.full(len(keep), si)), ("shard", np.full(len(keep), hi)),
                               ("row", keep), ("utt", meta["utt"][keep]),
                               ("src", meta["src_utt"][keep])):
                parts[key].append(value)
    cat = {k: np.concatenate(v) if v else np.zeros(0, int) for k, v in parts.items()}
    src = cat["src"].astype(np.int64)
    labels = {c: np.concatenate(v) if v else np.zeros(0, str) for c, v in found.items()}
    return Positions(store=cat["store"], shard=cat["shard"], row=cat["row"],
                     split=split[cat["utt"].astype(np.int64)], voice=voice[src], labels=labels)


def sample(labels: np.ndarray, pool: np.ndarray, n: int, balance: bool,
           rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of up to `n` positions of `pool` (bool mask); with `balance`, an equal
    number from each class (as many as the rarest class has, at most n / classes)."""
    idx = np.nonzero(pool)[0]
    if not balance:
        return np.sort(rng.choice(idx, min(n, len(idx)), replace=False))
    classes, counts = np.unique(labels[idx], return_counts=True)
    if len(classes) < 2:
        return np.zeros(0, np.int64)
    per = min(n // len(classes), int(counts.min()))
    picks = [rng.choice(idx[labels[idx] == c], per, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


@dataclass(frozen=True)
class ConceptSplit:
    """One concept's training and test positions (indices into Positions)."""

    concept: str
    train: np.ndarray
    test: np.ndarray


def concept_splits(pos: Positions, concepts: tuple[str, ...], max_train: int, max_test: int,
                   balance: bool, seed: int) -> list[ConceptSplit]:
    """Train on positions of train-split utterances (balanced when asked), test on a uniform
    sample of held-out-voice positions."""
    train_pool, test_pool = pos.split == TRAIN_SPLIT, pos.split == TEST_SPLIT
    overlap = set(pos.voice[train_pool]) & set(pos.voice[test_pool])
    if overlap:
        raise ValueError(f"voices {sorted(overlap)} are both in training and test positions")
    if not train_pool.any() or not test_pool.any():
        raise ValueError(f"the stores need positions of both the {TRAIN_SPLIT} and the "
                         f"{TEST_SPLIT} split (they have {train_pool.sum()} and "
                         f"{test_pool.sum()}); see `python -m sae.probes --help`")
    out = []
    for i, c in enumerate(concepts):
        if c not in pos.labels:
            raise ValueError(f"unknown concept {c!r}: the positions have {', '.join(pos.labels)}")
        rng = np.random.default_rng([seed, i])
        y = pos.labels[c]
        labelled = y != ""  # positions in neither group of a two-group concept
        out.append(ConceptSplit(c, sample(y, train_pool & labelled, max_train, balance, rng),
                                sample(y, test_pool & labelled, max_test, False, rng)))
    return out


def gather(stores: list[ActivationStore], pos: Positions, idx: np.ndarray) -> np.ndarray:
    """(len(idx), d) float32 activations of positions `idx` (sorted), read shard by shard."""
    d = stores[0].d_model
    out = np.zeros((len(idx), d), np.float32)
    key = pos.store[idx].astype(np.int64) * 1_000_000 + pos.shard[idx]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(idx)], strict=True):
        store = stores[pos.store[idx[a]]]
        acts = store.acts(store.shards[pos.shard[idx[a]]])
        out[a:b] = acts[pos.row[idx[a:b]]]
    return out
