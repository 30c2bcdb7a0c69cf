"""The acoustic judge: answers a rubric by measurement, never by guessing.

A registry of question matchers (regex over the question → a measurement → a verdict such as
"female", "faster", "same") is tried in order; the verdict is mapped to the one option whose text
says the same thing (or yes/no given the question's wording). When no matcher fits, an instrument
is missing, or the verdict maps to no single option, the answer is `unsupported`, recorded as such
and never counted as a pass.

Instruments that this package does not provide (a laughter detector, a speech recogniser) are
plugged in with `register_instrument`; on first use the backend imports `interp.instruments` so a
module there can register itself.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from interp.corpus.voices import GENDER_F0_SPLIT_HZ
from interp.judge import options as opt
from interp.judge.acoustics import PitchTrack, pitch_track
from interp.judge.audio import AudioPart, part_samples, stamp, to_mono
from interp.judge.format import AudioRef, question_refs
from interp.judge.protocol import LETTERS, Query
from interp.judge.records import STATUS_FAILED, STATUS_OK, STATUS_UNSUPPORTED, Outcome

logger = logging.getLogger(__name__)

LAUGHTER = "laughter"  # fn(wav: np.ndarray (T,), sr: int) -> probability in [0, 1] (or bool)
ASR = "asr"  # fn(wav: np.ndarray (T,), sr: int) -> transcript str
_INSTRUMENTS: dict[str, Callable] = {}
_PLUGINS_TRIED = False


def register_instrument(name: str, fn: Callable) -> None:
    """Make an instrument available to the acoustic judge (e.g. `LAUGHTER`, `ASR`)."""
    _INSTRUMENTS[name] = fn


def unregister_instrument(name: str) -> None:
    _INSTRUMENTS.pop(name, None)


def get_instrument(name: str) -> Callable | None:
    """A registered instrument; the first miss imports `interp.instruments` once.

    That module may call `register_instrument` itself, or expose `JUDGE_INSTRUMENTS`, a dict
    from instrument name to callable, registered here (explicit registrations win).
    """
    global _PLUGINS_TRIED
    if name not in _INSTRUMENTS and not _PLUGINS_TRIED:
        _PLUGINS_TRIED = True
        try:
            mod = importlib.import_module("interp.instruments")
        except ImportError:
            logger.debug("interp.instruments not importable; no extra instruments")
        else:
            for key, fn in dict(getattr(mod, "JUDGE_INSTRUMENTS", {})).items():
                _INSTRUMENTS.setdefault(key, fn)
    return _INSTRUMENTS.get(name)


@dataclass(frozen=True)
class AcousticConfig:
    gender_threshold_hz: float = GENDER_F0_SPLIT_HZ
    """Median F0 at or above this is 'female' (the corpus's split: male espeak voices sit at
    90–110 Hz, female ones at 170–230 Hz)."""
    gender_by: str = "f0"
    """f0: the median-F0 threshold above (tuned to espeak's voices); classifier: the gender
    instrument's P(male) ≥ 0.5 (the shipped classifier, or the one `--instruments gender=DIR`
    puts in place: for real voices, whose pitch ranges overlap)"""

    def __post_init__(self) -> None:
        if self.gender_by not in ("f0", "classifier"):
            raise ValueError(f"gender_by {self.gender_by!r}: choose f0 or classifier")
    rate_tolerance: float = 0.15
    """Voiced-duration ratio within 1 ± this counts as the same speaking rate."""
    pitch_tolerance: float = 0.12
    """Median-F0 ratio within 1 ± this counts as the same pitch / the same speaker."""
    min_voiced_s: float = 0.1
    """Less voiced time than this means 'no voice'."""
    laughter_threshold: float = 0.5
    """Laughter probability above this means laughter is present."""
    max_wer_same: float = 0.25
    """Word error rate at or below this means 'the same words'."""


@dataclass(frozen=True)
class Verdict:
    """A measured answer: `label` (None = cannot say), what was measured, and why."""

    label: str | None
    detail: dict = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Measurer:
    """Tools a matcher may use: the config and cached per-clip measurements."""

    cfg: AcousticConfig

    def track(self, part: AudioPart) -> PitchTrack:
        return _track(part, stamp(part.path))

    def voiced(self, t: PitchTrack) -> bool:
        return t.voiced_duration >= self.cfg.min_voiced_s


@lru_cache(maxsize=128)
def _track(part: AudioPart, file_stamp: tuple[int, int]) -> PitchTrack:
    x, sr = part_samples(part)
    return pitch_track(to_mono(x), sr)


MeasureFn = Callable[[Measurer, Query, "Targets"], Verdict]


@dataclass(frozen=True)
class Targets:
    """The clip a question is about, and the one it compares against."""

    subject: AudioPart  # first audio the question mentions (default: the output)
    output: AudioPart  # the output side of a comparison
    reference: AudioPart  # the input side of a comparison (default: input1)


def targets(query: Query) -> Targets:
    refs = question_refs(query.question)

    def pick(cands: list[AudioRef], default: AudioRef) -> AudioPart:
        for ref in sorted(cands, key=lambda r: r.start is None):  # slices first
            p = query.part(ref)
            if p is not None:
                return p
        part = query.part(default)
        assert part is not None, f"query for {query.sample_id} lacks {default.label}"
        return part

    subject = pick([r for r in refs if r.index == refs[0].index] if refs else [], AudioRef(0))
    out = pick([r for r in refs if r.index == 0], AudioRef(0))
    ref_idx = next((r.index for r in refs if r.index > 0), 1)
    return Targets(subject, out, pick([r for r in refs if r.index == ref_idx], AudioRef(ref_idx)))


@dataclass(frozen=True)
class Matcher:
    """A question pattern, its measurement, and the option classes it maps to."""

    name: str
    pattern: re.Pattern
    measure: MeasureFn
    classes: dict[str, re.Pattern]  # verdict label → pattern an option text must match


def measure_gender(m: Measurer, q: Query, t: Targets) -> Verdict:
    tr = m.track(t.subject)
    if not m.voiced(tr):
        return Verdict(opt.NONE, tr.summary(), f"no voiced speech in {t.subject.label}")
    if m.cfg.gender_by == "classifier":
        fn = get_instrument("gender")
        if fn is None:
            raise RuntimeError("gender_by classifier needs a gender instrument "
                               "(interp.instruments, or register_instrument('gender', fn))")
        x, sr = part_samples(t.subject)
        p = float(fn(to_mono(x), sr))
        return Verdict("male" if p >= 0.5 else "female", tr.summary() | {"p_male": round(p, 4)},
                       f"gender classifier P(male) {p:.2f} on {t.subject.label}")
    label = "female" if tr.median_f0 >= m.cfg.gender_threshold_hz else "male"
    return Verdict(label, tr.summary(), f"median F0 {tr.median_f0:.0f} Hz in {t.subject.label} "
                   f"(threshold {m.cfg.gender_threshold_hz:g} Hz)")


def _ratio_verdict(ratio: float, tol: float, more: str, less: str) -> str:
    if ratio > 1 + tol:
        return more
    return less if ratio < 1 / (1 + tol) else opt.SAME


def measure_rate(m: Measurer, q: Query, t: Targets) -> Verdict:
    a, b = m.track(t.output), m.track(t.reference)
    detail = {"output": a.summary(), "reference": b.summary()}
    if not (m.voiced(a) and m.voiced(b)):
        return Verdict(opt.NONE, detail, "no voiced speech to compare")
    ratio = a.voiced_duration / b.voiced_duration  # > 1: output takes longer, i.e. slower
    detail["voiced_ratio"] = round(ratio, 3)
    label = _ratio_verdict(ratio, m.cfg.rate_tolerance, "slower", "faster")
    return Verdict(label, detail, f"voiced time {a.voiced_duration:.2f} s in {t.output.label} vs "
                   f"{b.voiced_duration:.2f} s in {t.reference.label}")


def _f0_ratio(m: Measurer, t: Targets) -> tuple[float | None, dict]:
    a, b = m.track(t.output), m.track(t.reference)
    detail = {"output": a.summary(), "reference": b.summary()}
    if not (m.voiced(a) and m.voiced(b)):
        return None, detail
    ratio = a.median_f0 / b.median_f0
    detail["f0_ratio"] = round(ratio, 3)
    return ratio, detail


def measure_pitch(m: Measurer, q: Query, t: Targets) -> Verdict:
    ratio, detail = _f0_ratio(m, t)
    if ratio is None:
        return Verdict(opt.NONE, detail, "no voiced speech to compare")
    label = _ratio_verdict(ratio, m.cfg.pitch_tolerance, "higher", "lower")
    return Verdict(label, detail, f"median F0 ratio output/reference {ratio:.2f}")


def measure_speaker(m: Measurer, q: Query, t: Targets) -> Verdict:
    """Crude: same speaker iff median F0 within tolerance. Same-sex speakers often look alike."""
    ratio, detail = _f0_ratio(m, t)
    if ratio is None:
        return Verdict(opt.NONE, detail, "no voiced speech to compare")
    same = abs(np.log(ratio)) <= np.log(1 + m.cfg.pitch_tolerance)
    return Verdict(opt.SAME if same else opt.DIFFERENT, detail,
                   f"median F0 ratio {ratio:.2f} (crude speaker proxy)")


def measure_laughter(m: Measurer, q: Query, t: Targets) -> Verdict:
    fn = get_instrument(LAUGHTER)
    if fn is None:
        return Verdict(None, {}, "no laughter instrument registered")
    x, sr = part_samples(t.subject)
    p = float(fn(to_mono(x), sr))
    label = opt.PRESENT if p > m.cfg.laughter_threshold else opt.ABSENT
    return Verdict(label, {"laughter_probability": round(p, 3)}, f"laughter p={p:.2f}")


def measure_words(m: Measurer, q: Query, t: Targets) -> Verdict:
    fn = get_instrument(ASR)
    if fn is None:
        return Verdict(None, {}, "no speech recogniser registered")
    x, sr = part_samples(t.output)
    hyp = str(fn(to_mono(x), sr))
    if any(opt.classify(o, opt.YESNO) for o in q.options):
        y, sr2 = part_samples(t.reference)
        ref = str(fn(to_mono(y), sr2))
        w = opt.wer(ref, hyp)
        label = opt.SAME if w <= m.cfg.max_wer_same else opt.DIFFERENT
        return Verdict(label, {"output_text": hyp, "reference_text": ref, "wer": round(w, 3)},
                       f"WER {w:.2f} between transcripts")
    best = opt.closest_text(hyp, q.options, m.cfg.max_wer_same * 2)
    return Verdict(f"{opt.OPTION_PREFIX}{best}" if best is not None else opt.NONE, {"output_text": hyp},
                   f"transcript {hyp!r}")


MATCHERS: list[Matcher] = [
    Matcher("laughter", re.compile(r"\blaugh", re.I), measure_laughter, opt.PRESENCE),
    Matcher("rate", re.compile(r"\b(faster|slower|speed|speaking rate|pace|tempo|quick\w*)\b",
                               re.I), measure_rate, opt.RATE),
    Matcher("speaker", re.compile(r"\b(same (speaker|person|voice)|speaker identity|timbre|"
                                  r"different (speaker|person|voice))\b", re.I),
            measure_speaker, opt.SAMENESS),
    Matcher("words", re.compile(r"\b(words?|transcript\w*|say|says|said|spoken content|"
                                r"content of the speech|sentence|text)\b", re.I),
            measure_words, opt.SAMENESS),
    Matcher("pitch", re.compile(r"\bpitch|\b(higher|lower|deeper)[- ](voice|tone|register)\b",
                                re.I), measure_pitch, opt.PITCH),
    Matcher("gender", re.compile(r"\b(gender|male|female|man|woman|men|women|masculine|"
                                 r"feminine|boy|girl)\b", re.I), measure_gender, opt.GENDER),
]


def register_matcher(matcher: Matcher, first: bool = True) -> None:
    """Add a question matcher; `first` puts it ahead of the built-in ones."""
    if first:
        MATCHERS.insert(0, matcher)
    else:
        MATCHERS.append(matcher)


def find_matcher(question: str) -> Matcher | None:
    return next((mt for mt in MATCHERS if mt.pattern.search(question)), None)


class AcousticBackend:
    """Offline judge by measurement; unsupported where no matcher or instrument applies."""

    name = "acoustic"

    def __init__(self, cfg: AcousticConfig | None = None) -> None:
        self.cfg = cfg or AcousticConfig()
        self.measurer = Measurer(self.cfg)

    def answer(self, query: Query) -> Outcome:
        matcher = find_matcher(query.question)
        if matcher is None:
            return Outcome(STATUS_UNSUPPORTED, error="no acoustic measurement matches this question",
                           asks=1)
        verdict = matcher.measure(self.measurer, query, targets(query))
        info = {"matcher": matcher.name, "verdict": verdict.label, **verdict.detail}
        if verdict.label is None:
            return Outcome(STATUS_UNSUPPORTED, error=verdict.reason, asks=1, measurement=info)
        idx = opt.map_verdict(verdict.label, query.question, query.options, matcher.classes)
        if idx is None:
            return Outcome(STATUS_UNSUPPORTED, reply=verdict.label, reason=verdict.reason,
                           error=f"measured {verdict.label!r} but no single option says so",
                           asks=1, measurement=info)
        return Outcome(STATUS_OK, LETTERS[idx], f"{verdict.label}: {verdict.reason}",
                       verdict.reason, asks=1, measurement=info)

    async def ask(self, query: Query) -> Outcome:
        try:
            return self.answer(query)
        except Exception as e:  # a broken instrument or clip fails this query, not the run
            logger.exception("acoustic judge failed on %s", query.key)
            return Outcome(STATUS_FAILED, error=f"{type(e).__name__}: {e}", asks=1)

    async def aclose(self) -> None:
        return None
