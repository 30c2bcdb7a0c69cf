"""MMAE metadata and prediction files: load, validate, resolve audio paths.

Metadata is a JSON array of samples (a JSON-lines file is accepted too); a prediction is the same
sample with one more assistant message whose audio is the edited output. Every problem is raised
as a one-line `JudgeDataError` that names the sample id.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp.judge.audio import probe

logger = logging.getLogger(__name__)

IF_CATEGORY = "Instruction Following"
CR_CATEGORY = "Consistency"
CATEGORIES = (IF_CATEGORY, CR_CATEGORY)
OUTPUT_LABEL = "<audio output>"

_LABEL = r"<audio\s*(?:(output)|input\s*(\d*))\s*>"
_NUM = r"(\d+(?:\.\d+)?)\s*s?"
_SLICE = rf"\[\s*{_NUM}\s*:\s*{_NUM}\s*\]"
_REF_RE = re.compile(rf"{_LABEL}|{_SLICE}", re.IGNORECASE)


class JudgeDataError(ValueError):
    """Malformed metadata, predictions or audio; the message names the sample id."""


@dataclass(frozen=True)
class AudioRef:
    """An audio a question mentions: the output (index 0) or input N (index N), maybe a slice."""

    index: int
    start: float | None = None
    end: float | None = None
    span: str | None = field(default=None, compare=False)  # the slice as written, "2:4.5"

    @property
    def base_label(self) -> str:
        return OUTPUT_LABEL if self.index == 0 else f"<audio input{self.index}>"

    @property
    def label(self) -> str:
        if self.start is None:
            return self.base_label
        return f"{self.base_label}[{self.span or f'{self.start:g}:{self.end:g}'}]"


def question_refs(question: str) -> list[AudioRef]:
    """Audios and `[start:end]` slices a question mentions, in order, without duplicates.

    A slice written right after a label (`<audio input1>[2:4.5]`) belongs to that audio; a bare
    slice belongs to the nearest label before it, or to `<audio output>` when there is none.
    """
    refs: list[AudioRef] = []
    current = 0
    for m in _REF_RE.finditer(question):
        out, num, start, end = m.groups()
        if start is None:
            current = 0 if out else int(num or 1)
            ref = AudioRef(current)
        else:
            ref = AudioRef(current, float(start), float(end), f"{start}:{end}")
        if ref not in refs:
            refs.append(ref)
    return refs


@dataclass(frozen=True)
class Rubric:
    category: str
    question: str
    right_choice: str
    wrong_choices: tuple[str, ...]

    @property
    def options(self) -> tuple[str, ...]:
        """Unshuffled options, right choice first."""
        return (self.right_choice, *self.wrong_choices)


@dataclass(frozen=True)
class Operation:
    granularity: str
    operation: str


@dataclass(frozen=True)
class Sample:
    id: str
    complexity: str
    modality: str
    granularity: tuple[str, ...]
    operations: tuple[Operation, ...]
    rubrics: tuple[Rubric, ...]
    input_audios: tuple[str, ...]  # user audios in order, as written (relative to audio_root)
    instruction: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Prediction:
    id: str
    output_audio: str  # the last assistant audio, as written
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class JudgeItem:
    """A sample ready to judge: metadata plus resolved, checked audio paths."""

    sample: Sample
    output_path: str
    input_paths: tuple[str, ...]

    def path_of(self, index: int) -> str:
        return self.output_path if index == 0 else self.input_paths[index - 1]


def read_records(path: Path) -> list[dict]:
    """A JSON array file, or JSON lines (one object a line)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise JudgeDataError(f"{path}: neither a JSON array nor JSON lines ({e})") from e
    if isinstance(data, dict):
        data = data.get("samples", [data])
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise JudgeDataError(f"{path}: expected a JSON array of sample objects")
    return data


def _audio_urls(content: Any) -> list[str]:
    if isinstance(content, str) or not isinstance(content, list):
        return []
    urls = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in ("audio", "audio_url"):
            continue
        url = part.get("audio_url", part.get("audio"))
        if isinstance(url, dict):
            url = url.get("url")
        if isinstance(url, str) and url:
            urls.append(url)
    return urls


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]


def parse_rubric(sid: str, i: int, r: Any) -> Rubric:
    where = f"sample {sid}: rubric {i}"
    if not isinstance(r, dict):
        raise JudgeDataError(f"{where} is not an object")
    missing = [k for k in ("category", "question", "right_choice", "wrong_choices") if k not in r]
    if missing:
        raise JudgeDataError(f"{where} lacks field(s) {', '.join(missing)}")
    cat = {c.lower(): c for c in CATEGORIES}.get(str(r["category"]).strip().lower())
    if cat is None:
        raise JudgeDataError(f"{where}: category {r['category']!r} is not one of {CATEGORIES}")
    wrong = r["wrong_choices"]
    if not isinstance(wrong, list) or not wrong or not all(isinstance(w, str) for w in wrong):
        raise JudgeDataError(f"{where}: wrong_choices must be a non-empty list of strings")
    if not isinstance(r["question"], str) or not r["question"].strip():
        raise JudgeDataError(f"{where}: empty question")
    if not isinstance(r["right_choice"], str) or r["right_choice"] in wrong:
        raise JudgeDataError(f"{where}: right_choice must be a string not among wrong_choices")
    if len(wrong) + 1 > 26:
        raise JudgeDataError(f"{where}: more than 26 options")
    return Rubric(cat, r["question"], r["right_choice"], tuple(wrong))


def parse_sample(d: dict) -> Sample:
    """One metadata entry → Sample; raises JudgeDataError naming the id."""
    sid = d.get("id")
    if not isinstance(sid, str) or not sid:
        raise JudgeDataError(f"metadata entry without a string id: {json.dumps(d)[:80]}")
    rubrics = d.get("rubrics")
    if not isinstance(rubrics, list) or not rubrics:
        raise JudgeDataError(f"sample {sid}: no rubrics")
    messages = d.get("messages")
    if not isinstance(messages, list):
        raise JudgeDataError(f"sample {sid}: messages missing or not a list")
    user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    inputs = tuple(u for m in user for u in _audio_urls(m.get("content")))
    if not inputs:
        raise JudgeDataError(f"sample {sid}: no user audio in messages")
    gran = d.get("granularity", [])
    gran = (gran,) if isinstance(gran, str) else tuple(str(g) for g in gran)
    ops = tuple(
        Operation(str(o.get("granularity", "")), str(o.get("operation", "unknown")))
        for o in d.get("operations", []) if isinstance(o, dict)
    )
    return Sample(
        id=sid, complexity=str(d.get("complexity", "unknown")),
        modality=str(d.get("modality", "unknown")), granularity=gran, operations=ops,
        rubrics=tuple(parse_rubric(sid, i, r) for i, r in enumerate(rubrics)),
        input_audios=inputs, instruction=" ".join(t for m in user for t in _texts(m.get("content"))),
        raw=d,
    )


def load_metadata(path: Path) -> dict[str, Sample]:
    """id → Sample for every entry of an MMAE metadata file."""
    samples: dict[str, Sample] = {}
    for d in read_records(path):
        s = parse_sample(d)
        if s.id in samples:
            raise JudgeDataError(f"sample {s.id}: duplicate id in {path}")
        samples[s.id] = s
    return samples


def parse_prediction(d: dict) -> Prediction:
    """A prediction entry → Prediction (output = last assistant audio, or an `output_audio` key)."""
    pid = d.get("id")
    if not isinstance(pid, str) or not pid:
        raise JudgeDataError(f"prediction without a string id: {json.dumps(d)[:80]}")
    outs = [u for m in d.get("messages", []) if isinstance(m, dict) and m.get("role") == "assistant"
            for u in _audio_urls(m.get("content"))]
    out = outs[-1] if outs else d.get("output_audio")
    if not isinstance(out, str) or not out:
        raise JudgeDataError(f"sample {pid}: prediction has no assistant audio")
    return Prediction(pid, out, d)


def load_predictions(path: Path) -> list[Prediction]:
    preds = [parse_prediction(d) for d in read_records(path)]
    seen: set[str] = set()
    for p in preds:
        if p.id in seen:
            raise JudgeDataError(f"sample {p.id}: duplicate prediction in {path}")
        seen.add(p.id)
    return preds


def resolve_path(rel: str, roots: tuple[Path, ...]) -> Path:
    """An absolute path as is; a relative one under the first root where it exists."""
    p = Path(rel)
    if p.is_absolute():
        return p
    for root in roots:
        if (root / p).exists():
            return root / p
    return roots[0] / p


def _check_audio(sid: str, what: str, path: Path, sample_rate: int | None) -> float:
    if not path.exists():
        raise JudgeDataError(f"sample {sid}: {what} audio not found: {path}")
    try:
        sr, dur = probe(path)
    except Exception as e:  # soundfile raises several types for bad files
        raise JudgeDataError(f"sample {sid}: {what} audio unreadable: {path} ({e})") from e
    if sample_rate is not None and sr != sample_rate:
        raise JudgeDataError(
            f"sample {sid}: {what} audio {path} has sample rate {sr} Hz, expected {sample_rate}")
    if sample_rate is None and not 4000 <= sr <= 192000:
        raise JudgeDataError(f"sample {sid}: {what} audio {path} has implausible rate {sr} Hz")
    return dur


def _check_refs(sample: Sample, durations: list[float]) -> None:
    n_in = len(sample.input_audios)
    for i, r in enumerate(sample.rubrics):
        for ref in question_refs(r.question):
            if ref.index > n_in:
                raise JudgeDataError(f"sample {sample.id}: rubric {i} mentions {ref.base_label}"
                                     f" but the sample has {n_in} input audio(s)")
            if ref.start is None:
                continue
            if ref.end <= ref.start:
                raise JudgeDataError(f"sample {sample.id}: rubric {i} has empty slice {ref.label}")
            if ref.index > 0 and ref.start >= durations[ref.index - 1]:
                raise JudgeDataError(f"sample {sample.id}: rubric {i} slice {ref.label} starts "
                                     f"after the input's end ({durations[ref.index - 1]:.2f} s)")


def resolve_items(
    samples: dict[str, Sample], predictions: list[Prediction], audio_root: Path,
    predictions_dir: Path | None = None, sample_rate: int | None = None,
) -> list[JudgeItem]:
    """Pair predictions with metadata and check every audio exists and reads; fail fast."""
    roots = (Path(audio_root),) + ((Path(predictions_dir),) if predictions_dir else ())
    items = []
    for p in predictions:
        sample = samples.get(p.id)
        if sample is None:
            raise JudgeDataError(f"sample {p.id}: prediction has no metadata entry with this id")
        out = resolve_path(p.output_audio, roots)
        _check_audio(p.id, "output", out, sample_rate)
        ins = [resolve_path(a, (Path(audio_root),)) for a in sample.input_audios]
        durs = [_check_audio(p.id, f"input{k + 1}", a, sample_rate) for k, a in enumerate(ins)]
        _check_refs(sample, durs)
        items.append(JudgeItem(sample, str(out), tuple(str(a) for a in ins)))
    missing = sorted(set(samples) - {p.id for p in predictions})
    if missing:
        logger.warning("%d metadata sample(s) have no prediction and are not judged (first: %s)",
                       len(missing), missing[0])
    return items
