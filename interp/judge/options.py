"""Mapping a measured verdict onto a rubric's option texts (for the acoustic judge).

An option is classified by word patterns (e.g. 'female', 'faster', 'same'); the verdict picks the
one option of its class. When options are Yes/No, the question's own wording says which class
"Yes" stands for ("Is the speaker female?" → Yes = female). Anything ambiguous maps to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NONE = "none"  # nothing to measure (e.g. no voice): maps to "None of the above"
SAME, DIFFERENT = "same", "different"
PRESENT, ABSENT = "present", "absent"
OPTION_PREFIX = "option:"  # verdict naming an option index directly

# class label → (pattern that must match, pattern that must not match)
Classes = dict[str, tuple[re.Pattern, re.Pattern | None]]


def _c(must: str, must_not: str | None = None) -> tuple[re.Pattern, re.Pattern | None]:
    flags = re.I | re.S
    return re.compile(must, flags), re.compile(must_not, flags) if must_not else None


_NEG = r"\b(no|not|without|none|absent|lacks?|doesn't|does not|isn't|is not|removed)\b"
_SAME = r"\b(same|identical|unchanged|consistent|similar|preserved|maintain\w*|retain\w*|kept)\b"
NONE_RE = re.compile(r"\bnone of (the )?(above|these|them|the options)\b|^\W*none\W*$", re.I)

YESNO: Classes = {"yes": _c(r"^\W*(yes|true|correct)\b"), "no": _c(r"^\W*(no|false|incorrect)\b")}
GENDER: Classes = {
    "female": _c(r"\b(female|woman|women|girl|feminine|lady)\b"),
    "male": _c(r"\b(male|man|men|boy|masculine|gentleman)\b"),
}
RATE: Classes = {
    "faster": _c(r"\b(faster|quicker|sped up|speeds? up|more quickly|accelerat\w*)\b"),
    "slower": _c(r"\b(slower|slowed|slows? down|more slowly|decelerat\w*)\b"),
    SAME: _c(_SAME),
}
PITCH: Classes = {
    "higher": _c(r"\b(higher|raised|increased)\b"),
    "lower": _c(r"\b(lower|lowered|decreased|deeper)\b"),
    SAME: _c(_SAME),
}
SAMENESS: Classes = {
    SAME: _c(_SAME, r"\b(different|changed|altered|another)\b"),
    DIFFERENT: _c(r"\b(different|changed|altered|another)\b", _SAME),
}
PRESENCE: Classes = {PRESENT: _c(r"\blaugh", _NEG), ABSENT: _c(rf"^(?=.*\blaugh)(?=.*{_NEG})")}


def classify(text: str, classes: Classes) -> set[str]:
    """The class labels whose patterns fit a text."""
    out = set()
    for label, (must, must_not) in classes.items():
        if must.search(text) and (must_not is None or not must_not.search(text)):
            out.add(label)
    return out


def _unique(indices: list[int]) -> int | None:
    return indices[0] if len(indices) == 1 else None


def map_verdict(label: str, question: str, options: Sequence[str], classes: Classes) -> int | None:
    """Index of the one option that states the verdict, or None when none or several do."""
    if label.startswith(OPTION_PREFIX):
        return int(label[len(OPTION_PREFIX):])
    nones = [i for i, o in enumerate(options) if NONE_RE.search(o)]
    if label == NONE:
        return _unique(nones)
    direct = [i for i, o in enumerate(options) if i not in nones and classify(o, classes) == {label}]
    if direct:
        return _unique(direct)
    yes = [i for i, o in enumerate(options) if classify(o, YESNO) == {"yes"}]
    no = [i for i, o in enumerate(options) if classify(o, YESNO) == {"no"}]
    asked = classify(question, classes)
    if len(yes) == 1 and len(no) == 1 and len(asked) == 1:
        return yes[0] if label in asked else no[0]
    return None


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (word-level Levenshtein / reference length; 0 for two empty texts)."""
    r, h = words(reference), words(hypothesis)
    if not r:
        return 0.0 if not h else 1.0
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / len(r)


def closest_text(hypothesis: str, options: Sequence[str], max_wer: float) -> int | None:
    """Index of the option whose words best match a transcript, if within max_wer."""
    scored = [(wer(o, hypothesis), i) for i, o in enumerate(options) if not NONE_RE.search(o)]
    if not scored:
        return None
    best, idx = min(scored)
    return idx if best <= max_wer else None
