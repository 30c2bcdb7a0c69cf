"""CTC forced alignment: where in a clip each word of a known transcript is spoken.

`forced_align` is the Viterbi search over a CTC model's per-frame log-probabilities for the single
most likely path that spells exactly the given labels (blanks allowed between them, repeated
labels separated by a blank), as `torchaudio.functional.forced_align` does; torchaudio is not a
dependency, so it lives here in numpy. `word_spans` turns the path into (start, end) frames per
word of the transcript.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEG = -np.inf


def forced_align(log_probs: np.ndarray, targets: Sequence[int], blank: int = 0) -> np.ndarray | None:
    """Per frame of `log_probs` (T, vocab), the index into `targets` of the label the best path
    emits there, -1 on blank frames; None when no path fits (fewer frames than the labels need,
    or a label the model gives -inf everywhere). An empty `targets` is all blank."""
    lp = np.asarray(log_probs, np.float64)
    n_frames = lp.shape[0]
    n_labels = len(targets)
    if n_labels == 0:
        return np.full(n_frames, -1) if n_frames else None
    ext = np.full(2 * n_labels + 1, blank, dtype=np.int64)
    ext[1::2] = np.asarray(targets, np.int64)
    n_states = len(ext)
    repeats = int(sum(a == b for a, b in zip(targets, targets[1:], strict=False)))
    if n_frames < n_labels + repeats:
        return None
    # A label state may be entered straight from the label before it (skipping the blank) unless
    # both are the same label.
    skip = np.zeros(n_states, bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    alpha = np.full(n_states, NEG)
    alpha[0] = lp[0, ext[0]]
    alpha[1] = lp[0, ext[1]]
    back = np.zeros((n_frames, n_states), np.int8)  # 0: stayed, 1: from s-1, 2: from s-2
    cand = np.empty((3, n_states))
    for t in range(1, n_frames):
        cand[0] = alpha
        cand[1, 0] = NEG
        cand[1, 1:] = alpha[:-1]
        cand[2, :2] = NEG
        cand[2, 2:] = alpha[:-2]
        cand[2, ~skip] = NEG
        step = cand.argmax(0)
        back[t] = step
        alpha = cand[step, np.arange(n_states)] + lp[t, ext]
    end = n_states - 1 if alpha[-1] >= alpha[-2] else n_states - 2
    if not np.isfinite(alpha[end]):
        return None
    states = np.empty(n_frames, np.int64)
    s = end
    for t in range(n_frames - 1, -1, -1):
        states[t] = s
        s -= back[t, s]
    return np.where(states % 2 == 1, states // 2, -1)


def word_spans(path: np.ndarray, owner: Sequence[int], n_words: int) -> list[tuple[int, int] | None]:
    """(first frame, last frame + 1) of each word from a `forced_align` path, where `owner[i]` is
    the word target i belongs to (-1 for a separator such as the word delimiter); None for a word
    that has no label of its own (a number or a symbol the recogniser cannot spell)."""
    first = np.full(n_words, -1)
    last = np.full(n_words, -1)
    owner_arr = np.asarray(owner, np.int64)
    for t, label in enumerate(path):
        if label < 0:
            continue
        w = owner_arr[label]
        if w < 0:
            continue
        if first[w] < 0:
            first[w] = t
        last[w] = t
    return [(int(a), int(b) + 1) if a >= 0 else None for a, b in zip(first, last, strict=True)]
