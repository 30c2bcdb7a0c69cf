"""Concepts: a name and two groups of utterances (or of their speech positions), read from the
corpus table, so that a corpus of your own defines its own concepts.

A concept has one or more *targets*; a target contrasts a positive group (what steering pushes
toward, what a probe detects) with a negative group. A group is one or more conditions that must
all hold (written comma-separated, `style=whisper,gender=male`):

    COLUMN=VALUE    the utterance's column reads VALUE (any column of the table: the fixed ones,
                    e.g. gender, accent, rate_bin, voice_id, and an imported corpus's own labels,
                    e.g. style; values are compared as text: 175 → "175", True → "true",
                    a missing value → "")
    COLUMN!=VALUE   it does not
    tag=NAME        speech positions inside a NAME tag span (an utterance: one with such a span)
    tag!=NAME       speech positions outside every NAME span (an utterance: one without)
    tag=none        utterances without any tag span (tag!=none: with at least one)

Given only the positive group, the negative group is every other utterance (position): its
complement. On the command line:

    --concept whisper --groups style=whisper style=default [--concept-instruction "Please whisper."]

`--concept-instruction` is what the model is asked in steering's prompt baseline (the model's own
way to reach the target) and the instruction of the MMAE judge's samples; `--concept-rubric` is
the judge's question about `<audio output>`, answered "Yes" when the target is reached.

The built-in concepts are presets of the same mechanism (`PRESETS`): laughter (laughter spans vs
speech of untagged utterances), gender (male vs female, and back) and rate (slow vs fast, and
back). The probes' built-ins (`probe_concept`) read laughter as laughter spans vs every other
speech position, and gender, accent and rate as one class per value of their column; any other
column of the corpus probes the same way.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

TAG = "tag"
NO_TAG = "none"  # tag=none: utterances without any tag span
ASKS = ("", "instruction", "tag", "voice")  # how steering's prompt baseline asks for a target
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONDITION = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*(!=|=)\s*(.+)")
GROUPS_HELP = ("COLUMN=VALUE, COLUMN!=VALUE, tag=NAME, tag!=NAME or tag=none, several joined by "
               "commas")


def as_text(value) -> str:
    """A table value as conditions compare it: None → "", True → "true", 175 → "175"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Condition:
    """`column=value` (or `!=`); column `tag` reads tag spans, not a column."""

    column: str
    value: str
    negate: bool = False

    def __str__(self) -> str:
        return f"{self.column}{'!=' if self.negate else '='}{self.value}"

    @property
    def is_tag(self) -> bool:
        return self.column == TAG


def parse_condition(text: str) -> Condition:
    m = _CONDITION.fullmatch(text.strip())
    if not m or not m.group(3).strip():
        raise ValueError(f"malformed condition {text!r}: write {GROUPS_HELP}")
    return Condition(m.group(1), m.group(3).strip(), m.group(2) == "!=")


@dataclass(frozen=True)
class Group:
    """Utterances (speech positions) where every condition holds; with `complement`, those where
    they do not all hold."""

    name: str
    conditions: tuple[Condition, ...]
    complement: bool = False

    @property
    def spec(self) -> str:
        text = ",".join(str(c) for c in self.conditions)
        return f"not ({text})" if self.complement else text


def parse_group(text: str) -> Group:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty group {text!r}: write {GROUPS_HELP}")
    conds = tuple(parse_condition(p) for p in parts)
    return Group(",".join(str(c) for c in conds), conds)


@dataclass(frozen=True)
class Target:
    """Steering toward `positive` and away from `negative` (a probe: telling them apart)."""

    name: str
    positive: Group
    negative: Group
    ask: str = ""
    """how steering's prompt baseline asks for the target the model's own way: '' (no prompt
    baseline), instruction (`instruction` as the instruct text), tag (a `[name]` tag in the
    text), voice (a prompt voice of the target's gender)"""
    instruction: str = ""
    """the instruct text of ask=instruction (e.g. "Please whisper.")"""
    rubric: str = ""
    """the MMAE judge's question about <audio output>, answered Yes when the target is reached
    ('' for the presets, whose rubrics live in interp.judge.mmae_sets)"""
    label_pattern: str = ""
    """regular expression that an autointerp label naming the target matches (label search)"""

    def __post_init__(self) -> None:
        if self.ask not in ASKS:
            raise ValueError(f"target {self.name!r}: ask {self.ask!r} is not one of {ASKS}")


@dataclass(frozen=True)
class Concept:
    name: str
    targets: tuple[Target, ...]
    preset: bool = False

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise ValueError(f"concept {self.name!r} has no target {name!r}; it has "
                         f"{[t.name for t in self.targets]}")

    def groups(self) -> dict[str, Group]:
        """Every group, once, in order (a target's positive group, then its negative one)."""
        out: dict[str, Group] = {}
        for t in self.targets:
            for g in (t.positive, t.negative):
                if out.setdefault(g.name, g) != g:
                    raise ValueError(f"concept {self.name!r}: two different groups named "
                                     f"{g.name!r}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Concept:
        def group(g: dict) -> Group:
            return Group(g["name"], tuple(Condition(**c) for c in g["conditions"]),
                         g.get("complement", False))

        return cls(d["name"], tuple(Target(**{**t, "positive": group(t["positive"]),
                                              "negative": group(t["negative"])})
                                    for t in d["targets"]), d.get("preset", False))


def _is(name: str, column: str, value: str) -> Group:
    return Group(name, (Condition(column, value),))


_LAUGHTER, _UNTAGGED = _is("laughter", TAG, "laughter"), _is("no_laughter", TAG, NO_TAG)
_MALE, _FEMALE = _is("male", "gender", "male"), _is("female", "gender", "female")
_SLOW, _FAST = _is("slow", "rate_bin", "slow"), _is("fast", "rate_bin", "fast")
# concept → targets (group A vs group B: steering toward A), as steering selects them
PRESETS: dict[str, Concept] = {
    "laughter": Concept("laughter", (
        Target("laughter", _LAUGHTER, _UNTAGGED, ask="tag", label_pattern=r"laugh|giggl|chuckl"),
    ), preset=True),
    "gender": Concept("gender", (
        Target("male", _MALE, _FEMALE, ask="voice",
               label_pattern=r"(?<!fe)\bmale\b|\bman\b|\bmen\b|low[- ]pitch|deep voice|masculine"),
        Target("female", _FEMALE, _MALE, ask="voice",
               label_pattern=r"female|woman|women|high[- ]pitch|feminine"),
    ), preset=True),
    "rate": Concept("rate", (
        Target("slow", _SLOW, _FAST, ask="instruction", instruction="Please speak slowly.",
               label_pattern=r"slow|drawn[- ]out|long (vowel|pause)"),
        Target("fast", _FAST, _SLOW, ask="instruction", instruction="Please speak quickly.",
               label_pattern=r"fast|quick|rapid|hurried"),
    ), preset=True),
}
PRESET_TARGETS: dict[str, Target] = {t.name: t for c in PRESETS.values() for t in c.targets}
# The probes' built-ins: laughter as a two-group concept over positions (laughter spans vs every
# other speech position), the others as one class per value of a column.
PROBE_PRESETS: tuple[str, ...] = ("laughter", "gender", "accent", "rate")
PROBE_COLUMNS: dict[str, str] = {"gender": "gender", "accent": "accent", "rate": "rate_bin"}
PROBE_LAUGHTER = Concept("laughter", (Target(
    "laughter", _LAUGHTER, Group("none", _LAUGHTER.conditions, complement=True)),), preset=True)


# Planted concepts as autointerp's attributes name them (`KIND:VALUE` over speech positions):
# tag spans, the presets' columns, and every label column of an imported corpus as
# `label:COLUMN=VALUE` (the corpus's own concepts).
LABEL = "label"
PLANTED_COLUMNS: dict[str, str] = PROBE_COLUMNS  # attribute kind → table column
PLANTED_PREFIXES: tuple[str, ...] = (f"{TAG}:", *(f"{k}:" for k in PLANTED_COLUMNS), f"{LABEL}:")


def row_label_columns(rows: list[dict]) -> list[str]:
    """The corpus's own label columns (beyond the fixed table columns and an import's `source`),
    from its rows."""
    from interp.corpus.table import PROVENANCE, SCHEMA

    fixed = {*SCHEMA.names, *PROVENANCE}
    return list(dict.fromkeys(k for r in rows[:1] for k in r if k not in fixed))


def label_attribute(column: str, value) -> str:
    return f"{LABEL}:{column}={as_text(value)}"


def preset(name: str) -> Concept:
    if name not in PRESETS:
        raise ValueError(f"unknown concept {name!r}; choose from {sorted(PRESETS)}, or define it "
                         f"from the corpus: --concept {name} --groups COLUMN=VALUE [COLUMN=VALUE]")
    return PRESETS[name]


def define(name: str, groups: Sequence[str], instruction: str = "", rubric: str = ""
           ) -> Concept:
    """A concept of your own: `groups` is [positive] or [positive, negative], each a
    comma-separated list of conditions (module docstring); one target, named `name`."""
    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"concept name {name!r}: use letters, digits, '_', '.' or '-'")
    if name in PRESETS or name in PRESET_TARGETS:
        raise ValueError(f"{name!r} is a built-in concept or target; give yours another name "
                         "(or drop --groups to use the built-in)")
    if not 1 <= len(groups) <= 2:
        raise ValueError(f"--groups takes a positive group and optionally a negative one, not "
                         f"{len(groups)} ({' '.join(groups) or 'none'}); each: {GROUPS_HELP}")
    pos = parse_group(groups[0])
    neg = (parse_group(groups[1]) if len(groups) == 2
           else Group(f"not {pos.name}", pos.conditions, complement=True))
    if pos.conditions == neg.conditions and pos.complement == neg.complement:
        raise ValueError(f"--groups: both groups are {pos.spec}; give two different groups")
    return Concept(name, (Target(name, pos, neg, ask="instruction" if instruction else "",
                                 instruction=instruction, rubric=rubric,
                                 label_pattern=re.escape(name).replace(r"\_", "[ _]")),))


def resolve(name: str, groups: Sequence[str] = (), instruction: str = "", rubric: str = ""
            ) -> Concept:
    """The CLI's `--concept NAME [--groups ...]`: a preset by name, or a concept of your own."""
    if groups:
        return define(name, groups, instruction, rubric)
    if instruction or rubric:
        raise ValueError("--concept-instruction and --concept-rubric define a concept of your own: "
                         "give --groups too")
    return preset(name)


# ----------------------------------------------------------------------------- on a corpus

def _tag_spans(rows: list[dict], tag: str) -> list[list[tuple[float, float]]]:
    return [[(t["start"], t["end"]) for t in (r.get("tags") or []) if t.get("tag") == tag]
            for r in rows]


def span_overlap(t0: np.ndarray, t1: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    """(n,) bool: which token spans [t0, t1) overlap one of the (start, end) spans."""
    hit = np.zeros(len(t0), bool)
    for start, end in spans:
        hit |= (t0 < end) & (t1 > start)
    return hit


class CorpusGroups:
    """A concept's groups on a corpus table: which utterances, and which speech positions of a
    store shard, each group holds. Unknown columns and groups without an utterance are refused
    here, in one line."""

    def __init__(self, concept: Concept, rows: list[dict], corpus: str = "corpus",
                 columns: Sequence[str] | None = None):
        self.concept, self.rows, self.corpus = concept, rows, str(corpus)
        self.groups = concept.groups()
        known = list(columns) if columns is not None else list(dict.fromkeys(
            k for r in rows[:1] for k in r))
        for g in self.groups.values():
            for c in g.conditions:
                if not c.is_tag and c.column not in known:
                    raise ValueError(
                        f"unknown column {c.column!r} in group {g.spec!r} of {concept.name!r}; "
                        f"{self.corpus} has columns {', '.join(known)} (and tag=NAME)")
        self._values: dict[str, list[str]] = {}
        self._spans: dict[str, list[list[tuple[float, float]]]] = {}
        self.utterance = {name: self._utterances(g) for name, g in self.groups.items()}
        empty = [n for n, m in self.utterance.items() if not m.any()]
        if empty:
            raise ValueError(f"group {empty[0]!r} of {concept.name!r} holds no utterance of "
                             f"{self.corpus} ({self.describe()})")

    def values(self, column: str) -> list[str]:
        if column not in self._values:
            self._values[column] = [as_text(r.get(column)) for r in self.rows]
        return self._values[column]

    def spans(self, tag: str) -> list[list[tuple[float, float]]]:
        if tag not in self._spans:
            self._spans[tag] = _tag_spans(self.rows, tag)
        return self._spans[tag]

    def _condition(self, c: Condition) -> np.ndarray:
        """(n_rows,) bool: the utterances where the condition holds."""
        if c.is_tag and c.value == NO_TAG:
            hit = np.array([not r.get("tags") for r in self.rows], bool)
        elif c.is_tag:
            hit = np.array([bool(s) for s in self.spans(c.value)], bool)
        else:
            hit = np.array([v == c.value for v in self.values(c.column)], bool)
        return ~hit if c.negate else hit

    def _utterances(self, g: Group) -> np.ndarray:
        m = np.ones(len(self.rows), bool)
        for c in g.conditions:
            m &= self._condition(c)
        return ~m if g.complement else m

    def counts(self) -> dict[str, int]:
        return {n: int(m.sum()) for n, m in self.utterance.items()}

    def describe(self) -> str:
        """Utterances per group, and the commonest values of the columns the groups read."""
        parts = [f"{n}: {k}" for n, k in self.counts().items()]
        cols = dict.fromkeys(c.column for g in self.groups.values() for c in g.conditions)
        for col in cols:
            if col == TAG:
                tags = Counter(t.get("tag") for r in self.rows for t in (r.get("tags") or []))
                seen = ", ".join(f"{k} {v}" for k, v in tags.most_common(8)) or "none"
                parts.append(f"tag spans: {seen}")
            else:
                top = Counter(self.values(col)).most_common(8)
                parts.append(f"{col} values: " + ", ".join(f"{v or '(empty)'} {k}"
                                                           for v, k in top))
        return f"{'; '.join(parts)}; of {len(self.rows)} utterances"

    def positions(self, meta: dict[str, np.ndarray], speech: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean masks over a shard's positions, one per group: speech positions (`speech`)
        of the utterances the position sounds in (`src_utt`), tag conditions read at the
        position's own time span [t0, t1)."""
        src = meta["src_utt"]
        out = {}
        for name, g in self.groups.items():
            m = speech.copy()
            for c in g.conditions:
                if c.is_tag and c.value != NO_TAG:
                    hit = self._tag_positions(c.value, meta, speech)
                    m &= ~hit if c.negate else hit
                else:
                    m &= self._condition(c)[src]
            out[name] = speech & ~m if g.complement else m
        return out

    def _tag_positions(self, tag: str, meta: dict[str, np.ndarray], speech: np.ndarray
                       ) -> np.ndarray:
        out = np.zeros(len(speech), bool)
        spans = self.spans(tag)
        src = meta["src_utt"]
        for u in np.unique(src[speech]):
            if spans[u]:
                at = speech & (src == u)
                out[at] = span_overlap(meta["t0"][at], meta["t1"][at], spans[u])
        return out


def class_labels(concept: Concept, groups: CorpusGroups, meta: dict[str, np.ndarray],
                 speech: np.ndarray) -> np.ndarray:
    """(n,) str: each position's group of the concept's first target ('' in neither, or in
    both)."""
    t = concept.targets[0]
    masks = groups.positions(meta, speech)
    pos, neg = masks[t.positive.name], masks[t.negative.name]
    width = max(len(t.positive.name), len(t.negative.name), 1)
    out = np.full(len(speech), "", dtype=f"<U{width}")
    out[neg & ~pos] = t.negative.name
    out[pos & ~neg] = t.positive.name  # a position in both groups is in neither
    return out
