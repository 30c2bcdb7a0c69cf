"""The MMAE judge protocol: seeded option shuffles, prompt building, reply parsing, majority vote."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from interp.judge.audio import AudioPart, content_part
from interp.judge.format import AudioRef, JudgeItem, question_refs

logger = logging.getLogger(__name__)

LETTERS = string.ascii_uppercase
PROMPT_ENV = "STEERING_JUDGE_PROMPTS"
SYSTEM_FILE = "system.txt"
USER_FILE = "user.txt"

# Last-resort copies of data/judge/*.txt, used only when those files cannot be found.
_DEFAULT_SYSTEM = (
    "You are an audio analysis assistant. You listen carefully to the audio clips you are given "
    "and answer a multiple-choice question about them. <audio output> is the edited audio under "
    "evaluation; <audio input1>, <audio input2>, ... are the original input audios in order; a "
    "label followed by [start:end] is that segment in seconds, provided as its own clip. Reply "
    'with a single JSON object: {"reason": "<one or two sentences>", "choice": "<one uppercase '
    'letter>"}.'
)
_DEFAULT_USER = (
    "Question: $question\n\nOptions:\n$options\n\n"
    'Answer with a JSON object {"reason": "...", "choice": "X"} where X is one of $letters.'
)


@dataclass(frozen=True)
class Prompts:
    system: str
    user: string.Template
    source: str


def _prompt_dirs(prompt_dir: Path | None) -> list[Path]:
    dirs = [Path(prompt_dir)] if prompt_dir else []
    if os.environ.get(PROMPT_ENV):
        dirs.append(Path(os.environ[PROMPT_ENV]))
    here = Path(__file__).resolve()
    dirs += [here.parents[2] / "data" / "judge", here.parent / "data", Path.cwd() / "data/judge"]
    return dirs


def load_prompts(prompt_dir: Path | None = None) -> Prompts:
    """The system and user templates from the first folder that has both files.

    An explicit `prompt_dir` that lacks them is an error; otherwise the built-in copies are used
    (with a warning) when no folder is found.
    """
    for d in _prompt_dirs(prompt_dir):
        sys_f, user_f = d / SYSTEM_FILE, d / USER_FILE
        if sys_f.is_file() and user_f.is_file():
            user = user_f.read_text(encoding="utf-8").strip()
            for key in ("$question", "$options"):
                if key not in user:
                    raise ValueError(f"{user_f}: template lacks {key}")
            return Prompts(sys_f.read_text(encoding="utf-8").strip(), string.Template(user), str(d))
        if prompt_dir is not None and d == Path(prompt_dir):
            raise FileNotFoundError(f"{d} lacks {SYSTEM_FILE} and/or {USER_FILE}")
    logger.warning("judge prompt files not found; using built-in prompts")
    return Prompts(_DEFAULT_SYSTEM, string.Template(_DEFAULT_USER), "built-in")


@dataclass(frozen=True)
class Query:
    """One ask of one rubric: the shuffled options and the clips to send."""

    sample_id: str
    rubric_index: int
    query_index: int
    category: str
    question: str
    options: tuple[str, ...]
    right_letter: str
    parts: tuple[AudioPart, ...]

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.sample_id, self.rubric_index, self.query_index)

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    def part(self, ref: AudioRef) -> AudioPart | None:
        return next((p for p in self.parts if p.label == ref.label), None)


def _rng(seed: int, *keys: object) -> random.Random:
    h = hashlib.sha256(":".join(map(str, (seed, *keys))).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def shuffles(options: Sequence[str], n: int, seed: int, *keys: object) -> list[tuple[int, ...]]:
    """n seeded permutations of range(len(options)), pairwise distinct where enough exist.

    Deterministic in (seed, keys); query q's permutation does not depend on n, so asking more
    queries later keeps the first ones.
    """
    rng = _rng(seed, *keys)
    k = len(options)
    n_perms = 1
    for i in range(2, k + 1):
        n_perms *= i
    out: list[tuple[int, ...]] = []
    while len(out) < n:
        perm = list(range(k))
        rng.shuffle(perm)
        if tuple(perm) not in out or len(out) >= n_perms:
            out.append(tuple(perm))
    return out


def rubric_parts(item: JudgeItem, question: str) -> tuple[AudioPart, ...]:
    """Clips for a rubric: the output, every input, then each slice the question mentions."""
    s = item.sample
    parts = [AudioPart(AudioRef(i).label, item.path_of(i)) for i in range(len(s.input_audios) + 1)]
    for ref in question_refs(question):
        if ref.start is not None:
            parts.append(AudioPart(ref.label, item.path_of(ref.index), ref.start, ref.end))
    return tuple(parts)


def plan_queries(item: JudgeItem, n_queries: int, seed: int) -> list[Query]:
    """All queries of one sample: each rubric asked n_queries times with shuffled options."""
    queries = []
    for r_i, rubric in enumerate(item.sample.rubrics):
        parts = rubric_parts(item, rubric.question)
        opts = rubric.options
        for q_i, perm in enumerate(shuffles(opts, n_queries, seed, item.sample.id, r_i)):
            shuffled = tuple(opts[j] for j in perm)
            right = LETTERS[perm.index(0)]
            queries.append(Query(item.sample.id, r_i, q_i, rubric.category, rubric.question,
                                 shuffled, right, parts))
    return queries


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def build_messages(prompts: Prompts, query: Query, audio_style: str = "input_audio") -> list[dict]:
    """OpenAI chat messages for a query: system prompt; labelled clips, then the question."""
    content: list[dict] = []
    for part in query.parts:
        content.append({"type": "text", "text": f"{part.label}:"})
        content.append(content_part(part, audio_style))
    text = prompts.user.safe_substitute(
        question=query.question, options=format_options(query.options),
        letters=", ".join(query.letters),
    )
    content.append({"type": "text", "text": text})
    return [{"role": "system", "content": prompts.system}, {"role": "user", "content": content}]


@dataclass(frozen=True)
class ParsedReply:
    choice: str | None
    reason: str | None = None
    error: str | None = None


_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CHOICE_RE = re.compile(r'"choice"\s*:\s*"\s*([A-Za-z])\s*[.)]?\s*"')
_BARE_RE = re.compile(r"^\W*([A-Z])\W*$")


def _json_objects(text: str) -> list[dict]:
    dec, objs, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            objs.append(obj)
        i = text.find("{", end)
    return objs


def parse_reply(text: str | None, n_options: int) -> ParsedReply:
    """The letter a judge reply picks, or an error saying why it cannot be read.

    Accepts `{"reason": ..., "choice": "B"}` (also inside code fences or after a <think> block),
    a lone letter such as `B` or `(B)`; a letter outside the offered ones is invalid.
    """
    if not text or not text.strip():
        return ParsedReply(None, error="empty reply")
    body = _THINK_RE.sub("", text).strip()
    valid = LETTERS[:n_options]
    letter, reason = None, None
    for obj in reversed(_json_objects(body)):
        if "choice" in obj:
            c = str(obj["choice"]).strip().rstrip(".)").lstrip("(")
            letter, reason = c.upper() if len(c) == 1 else c, obj.get("reason")
            break
    if letter is None:
        m = _CHOICE_RE.search(body) or _BARE_RE.match(body)
        letter = m.group(1).upper() if m else None
    if letter is None:
        return ParsedReply(None, error=f"unparsable reply: {body[:120]!r}")
    if letter not in valid:
        return ParsedReply(None, reason, f"invalid choice {letter!r} (options {valid})")
    return ParsedReply(letter, None if reason is None else str(reason))


def majority(correct: Sequence[bool], threshold: int = 2) -> bool:
    """A rubric passes when at least `threshold` of its answers are right (MMAE: 2 of 3)."""
    return sum(bool(c) for c in correct) >= threshold
