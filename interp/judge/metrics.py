"""MMAE metrics from judged queries: rubric pass (majority vote), IFR / CR / EMR, taxonomy.

- A rubric passes when at least `threshold` (2) of its `n_queries` (3) answers are right. A query
  whose reply named no valid choice counts as a wrong answer (MMAE). A query that got no reply
  at all (`records.unanswered`: refused, timed out, server error) judged nothing: a rubric whose
  outcome those queries could still change is `undecided`, never a fail. A rubric that cannot
  pass and has an `unsupported` answer is `unsupported` (acoustic judge); a rubric with a query
  not judged yet is `missing`. None of these passes.
- A sample with an undecided or missing rubric is not `judged`: the metric of that rubric's
  category and EMR are null (left out of the means; `unjudged` counts such samples) unless a
  decided failure already fixes EMR at 0. No score is ever computed from unanswered queries.
- Per sample: IFR = passed Instruction Following rubrics / their count, CR likewise for
  Consistency; a sample with no rubric of a category has null for that metric, and is left out of
  that metric's mean (its `n_*` count says so). EMR = 1 iff every rubric passed. `*_supported`
  variants divide by the rubrics that are not unsupported (null when there are none).
- Means are over samples, ×100. Breakdowns: complexity, modality, granularity (the sample's
  granularity list joined with '+', local first) and operation (a sample counts once under each
  distinct operation it has).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from interp.judge.format import CR_CATEGORY, IF_CATEGORY, JudgeItem
from interp.judge.protocol import majority
from interp.judge.records import STATUS_FAILED, STATUS_UNSUPPORTED, Key, unanswered

PASS, FAIL, UNSUPPORTED, MISSING, UNDECIDED = "pass", "fail", "unsupported", "missing", "undecided"
OPEN = (MISSING, UNDECIDED)  # rubrics without a verdict
METRICS = ("IFR", "CR", "EMR", "IFR_supported", "CR_supported")


@dataclass(frozen=True)
class RubricResult:
    index: int
    category: str
    status: str
    n_correct: int
    n_failed: int
    n_unsupported: int

    @property
    def passed(self) -> bool:
        return self.status == PASS


def rubric_result(index: int, category: str, records: list[dict | None], threshold: int
                  ) -> RubricResult:
    """Vote over one rubric's query records (None where a query has no record)."""
    present = [r for r in records if r is not None]
    correct = [bool(r.get("correct")) for r in present]
    n_unsup = sum(r.get("status") == STATUS_UNSUPPORTED for r in present)
    n_failed = sum(r.get("status") == STATUS_FAILED for r in present)
    n_unanswered = sum(unanswered(r) for r in present)
    if majority(correct, threshold):
        status = PASS
    elif len(present) < len(records):
        status = MISSING
    elif sum(correct) + n_unanswered >= threshold:  # the unanswered queries could pass it
        status = UNDECIDED
    elif n_unsup:
        status = UNSUPPORTED
    else:
        status = FAIL
    return RubricResult(index, category, status, sum(correct), n_failed, n_unsup)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def sample_scores(item: JudgeItem, results: dict[Key, dict], n_queries: int, threshold: int
                  ) -> dict:
    """One per_sample.json entry."""
    s = item.sample
    rubrics = [
        rubric_result(i, r.category, [results.get((s.id, i, q)) for q in range(n_queries)],
                      threshold)
        for i, r in enumerate(s.rubrics)
    ]
    entry: dict = {"complexity": s.complexity, "modality": s.modality,
                   "granularity": list(s.granularity),
                   "operations": sorted({o.operation for o in s.operations})}
    for cat, key in ((IF_CATEGORY, "IFR"), (CR_CATEGORY, "CR")):
        rs = [r for r in rubrics if r.category == cat]
        passed = sum(r.passed for r in rs)
        unsup = sum(r.status == UNSUPPORTED for r in rs)
        open_ = any(r.status in OPEN for r in rs)
        entry[key] = None if open_ else _ratio(passed, len(rs))
        entry[f"{key}_supported"] = None if open_ else _ratio(passed, len(rs) - unsup)
        entry[f"n_{key}"], entry[f"passed_{key}"], entry[f"unsupported_{key}"] = (
            len(rs), passed, unsup)
    entry["EMR"] = exact_match(rubrics)
    entry["judged"] = not any(r.status in OPEN for r in rubrics)
    entry["unsupported"] = sum(r.status == UNSUPPORTED for r in rubrics)
    entry["missing"] = sum(r.status == MISSING for r in rubrics)
    entry["undecided"] = sum(r.status == UNDECIDED for r in rubrics)
    entry["failed_queries"] = sum(r.n_failed for r in rubrics)
    entry["rubrics"] = [
        {"index": r.index, "category": r.category, "status": r.status, "n_correct": r.n_correct}
        for r in rubrics
    ]
    return entry


def exact_match(rubrics: list[RubricResult]) -> int | None:
    """1 when every rubric passed, 0 when one surely did not, None while one has no verdict."""
    if any(r.status in (FAIL, UNSUPPORTED) for r in rubrics):
        return 0
    if any(r.status in OPEN for r in rubrics):
        return None
    return 1


def per_sample(items: Iterable[JudgeItem], results: dict[Key, dict], n_queries: int = 3,
               threshold: int = 2) -> dict[str, dict]:
    return {it.sample.id: sample_scores(it, results, n_queries, threshold) for it in items}


def _mean100(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(100.0 * sum(vals) / len(vals), 2) if vals else None


def group_stats(entries: list[dict]) -> dict:
    """Means ×100 and counts over a group of per-sample entries."""
    out: dict = {"n_samples": len(entries)}
    for m in METRICS:
        vals = [e[m] for e in entries]
        out[m] = _mean100(vals)
        out[f"n_{m}"] = sum(v is not None for v in vals)
    for k in ("n_IFR", "n_CR"):
        out[f"rubrics_{k[2:]}"] = sum(e[k] for e in entries)
    for k in ("unsupported", "missing", "undecided", "failed_queries"):
        out[k] = sum(e.get(k, 0) for e in entries)
    out["unjudged"] = sum(not e.get("judged", True) for e in entries)
    return out


def granularity_key(granularity: Iterable[str]) -> str:
    g = sorted(set(granularity), key=lambda x: (x != "local", x != "global", x))
    return "+".join(g) if g else "unknown"


def taxonomy(per_sample_scores: dict[str, dict]) -> dict:
    """Overall means and the breakdowns by complexity, modality, granularity and operation."""
    entries = list(per_sample_scores.values())
    groups: dict[str, dict[str, list[dict]]] = {
        k: defaultdict(list) for k in ("complexity", "modality", "granularity", "operation")}
    for e in entries:
        groups["complexity"][e["complexity"]].append(e)
        groups["modality"][e["modality"]].append(e)
        groups["granularity"][granularity_key(e["granularity"])].append(e)
        for op in e["operations"] or ["unknown"]:
            groups["operation"][op].append(e)
    out: dict = {"overall": group_stats(entries)}
    for name, g in groups.items():
        out[name] = {k: group_stats(v) for k, v in sorted(g.items())}
    out["notes"] = (
        "Metrics are means over samples x100. A sample without rubrics of a category has a null "
        "IFR or CR and is excluded from that mean (n_IFR / n_CR count the samples included). "
        "Unsupported rubrics count as not passed; *_supported means leave them out of the "
        "denominator. A rubric that unanswered queries (no reply from the judge) could still "
        "pass is undecided: its category metric and EMR are null for that sample (unjudged "
        "counts them), never a fail. Operation groups are multi-label."
    )
    return out
