"""Steering → MMAE (issue #11's adapter): each steered output becomes an MMAE sample whose input
is the unsteered audio, with instruction-following and consistency rubrics phrased so that the
acoustic judge (interp.judge.acoustic_backend) can measure them; then judged, beside the
Identity and Noise controls."""

from __future__ import annotations

import logging
from pathlib import Path

from interp.judge import (
    ApiConfig,
    JudgeConfig,
    build_sample,
    judge,
    make_sample_id,
    write_controls,
    write_mmae_set,
)

log = logging.getLogger(__name__)

IF, CR = "Instruction Following", "Consistency"
NONE = "None of the above"
INSTRUCTIONS = {"laughter": "Make the speaker laugh.", "male": "Make the voice sound male.",
                "female": "Make the voice sound female.", "slow": "Speak more slowly.",
                "fast": "Speak more quickly."}
RATE_Q = ("Compared with <audio input1>, is the speaking rate of <audio output> faster, slower "
          "or about the same?")
WORDS = {"category": CR, "question": "Does <audio output> say the same words as <audio input1>?",
         "right_choice": "Yes", "wrong_choices": ["No"]}
SPEAKER = {"category": CR, "right_choice": "Yes", "wrong_choices": ["No"],
           "question": "Is <audio output> spoken by the same speaker as <audio input1>?"}
SAME_RATE = {"category": CR, "question": RATE_Q, "right_choice": "About the same",
             "wrong_choices": ["Faster", "Slower", NONE]}


def rubrics(target: str) -> list[dict]:
    """The concept changed (IF); same words, and same speaker or rate where intended (CR)."""
    if target == "laughter":
        return [{"category": IF, "question": "Does <audio output> contain laughter?",
                 "right_choice": "Yes", "wrong_choices": ["No"]}, WORDS, SPEAKER]
    if target in ("male", "female"):
        other = "Female" if target == "male" else "Male"
        return [{"category": IF, "question": "What is the gender of the speaker in <audio output>?",
                 "right_choice": target.capitalize(), "wrong_choices": [other, NONE]},
                WORDS, SAME_RATE]
    right = "Slower" if target == "slow" else "Faster"
    wrong = ["Faster" if target == "slow" else "Slower", "About the same", NONE]
    return [{"category": IF, "question": RATE_Q, "right_choice": right, "wrong_choices": wrong},
            WORDS, SPEAKER]


def write_sets(rows: list[dict], out: Path, concept: str, method: str = "sae") -> dict[str, Path]:
    """One MMAE set per (target, strength) of `method` under out/mmae/<target>_s<strength>/;
    returns {name: folder}."""
    base = {r["item"]: r for r in rows if r["method"] == "none"}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["method"] == method and r["item"] in base:
            groups.setdefault(f"{r['target']}_s{r['strength']:g}", []).append(r)
    sets = {}
    for name, rs in sorted(groups.items()):
        root = out / "mmae" / name
        pairs = [build_sample(
            root, INSTRUCTIONS[r["target"]], out / base[r["item"]]["wav"], out / r["wav"],
            rubrics(r["target"]), tags=[concept, r["target"], f"strength={r['strength']:g}"],
            sample_id=make_sample_id(concept, name, str(r["item"]))) for r in rs]
        write_mmae_set(root, pairs)
        sets[name] = root
    return sets


def _scores(summary: dict) -> dict:
    o = summary["overall"]
    return {k: o.get(k) for k in ("IFR", "CR", "EMR")} | {
        "n": summary["n_samples"], "unjudged": summary["samples_unjudged"]}


def judge_sets(sets: dict[str, Path], out: Path, backend: str, base_url: str = "",
               model: str = "") -> dict:
    """Judge every set, then Identity and Noise controls of each target's strongest set;
    IFR/CR/EMR of each."""
    api = ApiConfig(**{k: v for k, v in (("base_urls", (base_url,) if base_url else None),
                                         ("model", model or None)) if v is not None})

    def run(pred: Path, meta: Path, root: Path, dest: Path) -> dict:
        return _scores(judge(JudgeConfig(pred, meta, root, dest, backend=backend, api=api)))

    scores: dict = {}
    for name, root in sets.items():
        scores[name] = run(root / "predictions.json", root / "MMAE-meta.json", root,
                           out / "judge" / name)
    strongest: dict[str, str] = {}
    for name in sets:  # per target, the set of the largest strength
        target, s = name.rsplit("_s", 1)
        if target not in strongest or float(s) > float(strongest[target].rsplit("_s", 1)[1]):
            strongest[target] = name
    for name in strongest.values():
        root = sets[name]
        ctrl = write_controls(root / "MMAE-meta.json", root, out / "judge" / f"controls_{name}")
        for kind, pred in ctrl.items():
            scores[f"{kind} ({name})"] = run(pred, root / "MMAE-meta.json", root,
                                             out / "judge" / f"controls_{name}" / f"{kind}_judged")
    return scores
