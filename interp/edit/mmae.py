"""TinyEdit's edits as an MMAE set, judged by the acoustic judge beside four rows of reference:
Identity (output = source) and Noise controls, the espeak-ng ground-truth target (`oracle`) and
that target through the codec (`codec_oracle`, the ceiling a token model can reach).

Rubrics are phrased so that the acoustic judge's matchers can measure them (gender, rate,
laughter, same words, same speaker); the accent rubric has no instrument and is reported as
unsupported rather than guessed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from interp.judge import (
    JudgeConfig,
    build_sample,
    judge,
    make_sample_id,
    write_controls,
    write_mmae_set,
)
from interp.judge.controls import with_output

# the steering adapter's rubric texts: edits and steering are judged by the same questions
from interp.judge.mmae_sets import IF, NONE, RATE_Q, SAME_RATE, SPEAKER, WORDS
from interp.judge.records import write_json_atomic

ACCENTS = {"en-us": "American", "en-gb": "British", "en-gb-x-rp": "Received Pronunciation",
           "en-gb-scotland": "Scottish", "en-029": "Caribbean", "en-us-nyc": "New York"}


def rubrics(pair: dict) -> list[dict]:
    """Instruction-following and consistency rubrics of one edit pair."""
    op = pair["operation"]
    if op == "gender":
        want = pair["target_gender"].capitalize()
        other = "Female" if want == "Male" else "Male"
        return [{"category": IF, "question": "What is the gender of the speaker in "
                 "<audio output>?", "right_choice": want, "wrong_choices": [other, NONE]},
                WORDS, SAME_RATE]
    if op in ("faster", "slower"):
        right, wrong = ("Faster", "Slower") if op == "faster" else ("Slower", "Faster")
        return [{"category": IF, "question": RATE_Q, "right_choice": right,
                 "wrong_choices": [wrong, "About the same", NONE]}, WORDS, SPEAKER]
    if op in ("add_laughter", "remove_laughter"):
        yes = op == "add_laughter"
        return [{"category": IF, "question": "Does <audio output> contain laughter?",
                 "right_choice": "Yes" if yes else "No", "wrong_choices": ["No" if yes else "Yes"]},
                WORDS, SPEAKER]
    accent = ACCENTS.get(pair["target_accent"], pair["target_accent"])
    wrong = [a for a in ACCENTS.values() if a != accent][:3]
    return [{"category": IF, "question": "Which accent does <audio output> have?",
             "right_choice": accent, "wrong_choices": wrong}, WORDS, SPEAKER]


def judge_edits(items: list[dict], root: Path, sr: int = 16000, name: str = "tinyedit",
                references: bool = True) -> dict:
    """`items`: {pair, source (path), target (path), target_codec (array), output (array)
    [, sample_key]}. Writes the MMAE set under root and judges the outputs (as `name`) and, with
    `references`, the Identity, Noise, oracle and codec-oracle sets; IFR/CR/EMR overall and per
    operation for each. `sample_key` (default: the pair id) names the sample, so that outputs of
    one pair made differently (e.g. another steering strength) are judged afresh, not resumed."""
    root = Path(root)
    samples = [build_sample(root, it["pair"]["instruction"], it["source"], (it["output"], sr),
                            rubrics(it["pair"]),
                            sample_id=make_sample_id("tinyedit",
                                                     it.get("sample_key", it["pair"]["pair_id"])),
                            operation=it["pair"]["mmae_operation"],
                            granularity=it["pair"]["granularity"],
                            tags=[it["pair"]["operation"]]) for it in items]
    meta, preds = write_mmae_set(root, samples)
    sets = {name: preds}
    if references:
        sets.update(write_controls(meta, root, root / "controls"))
    for ref, key in (("oracle", "target"), ("codec_oracle", "target_codec")):
        if not references or any(it[key] is None for it in items):
            continue
        rows = []
        for (m, _), it in zip(samples, items, strict=True):
            wav = it[key]
            if not isinstance(wav, (str, Path)):
                wav = root / ref / f"{m['id']}.wav"
                _write(wav, it[key], sr)
            rows.append(with_output(m, str(Path(wav).resolve())))
        sets[ref] = root / ref / "predictions.json"
        sets[ref].parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(sets[ref], rows)
    op_of = {m["id"]: it["pair"]["operation"] for (m, _), it in zip(samples, items, strict=True)}
    return {n: _scores(judge(JudgeConfig(pred, meta, root, root / "judged" / n,
                                         backend="acoustic")), root / "judged" / n, op_of)
            for n, pred in sets.items()}


def _write(path: Path, audio: np.ndarray, sr: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1, 1), sr, subtype="PCM_16")


def _scores(summary: dict, judged: Path, op_of: dict[str, str]) -> dict:
    import json

    per = json.loads((judged / "per_sample.json").read_text())
    by_op: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sid, s in per.items():
        for k in ("IFR", "CR", "EMR"):
            if s.get(k) is not None:
                by_op[op_of[sid]][k].append(float(s[k]))
    o = summary["overall"]
    return {"overall": {k: o.get(k) for k in ("IFR", "CR", "EMR", "IFR_supported")},
            "n": summary["n_samples"], "unjudged": summary["samples_unjudged"],
            "unsupported_queries": summary["queries_unsupported"],
            "by_operation": {op: {k: round(100 * float(np.mean(v)), 2) for k, v in d.items()}
                             for op, d in sorted(by_op.items())}}
