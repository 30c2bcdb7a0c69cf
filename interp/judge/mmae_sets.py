"""The one MMAE adapter: steered outputs and TinyEdit edits become MMAE sets, judged beside the
Identity and Noise controls (and, for edits, the espeak-ng target `oracle` and that target through
the codec, `codec_oracle`, the ceiling a token model can reach).

Steering and editing are asked the same questions: an edit operation is mapped onto the steering
target it moves toward (`edit_target`), and `rubrics(target)` phrases them so that the acoustic
judge's matchers (interp.judge.acoustic_backend) can measure them (gender, rate, laughter, same
words, same speaker); the accent rubric has no instrument and is reported as unsupported rather
than guessed. `write_set` is the one path from (input, output, target) to MMAE files.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.audio import SAMPLE_RATE
from interp.concepts import Concept, Target
from interp.judge.api_backend import ApiConfig
from interp.judge.controls import with_output, write_controls
from interp.judge.mmae_writer import Wav, build_sample, make_sample_id, write_mmae_set
from interp.judge.records import write_json_atomic
from interp.judge.runner import JudgeConfig, judge

log = logging.getLogger(__name__)

IF, CR = "Instruction Following", "Consistency"
NONE = "None of the above"
INSTRUCTIONS = {"laughter": "Make the speaker laugh.", "male": "Make the voice sound male.",
                "female": "Make the voice sound female.", "slow": "Speak more slowly.",
                "fast": "Speak more quickly."}
ACCENTS = {"en-us": "American", "en-gb": "British", "en-gb-x-rp": "Received Pronunciation",
           "en-gb-scotland": "Scottish", "en-029": "Caribbean", "en-us-nyc": "New York"}
RATE_Q = ("Compared with <audio input1>, is the speaking rate of <audio output> faster, slower "
          "or about the same?")
GENDER_Q = "What is the gender of the speaker in <audio output>?"
LAUGHTER_Q = "Does <audio output> contain laughter?"
ACCENT_Q = "Which accent does <audio output> have?"
WORDS = {"category": CR, "question": "Does <audio output> say the same words as <audio input1>?",
         "right_choice": "Yes", "wrong_choices": ["No"]}
SPEAKER = {"category": CR, "right_choice": "Yes", "wrong_choices": ["No"],
           "question": "Is <audio output> spoken by the same speaker as <audio input1>?"}
SAME_RATE = {"category": CR, "question": RATE_Q, "right_choice": "About the same",
             "wrong_choices": ["Faster", "Slower", NONE]}
# edit operation → the steering target it moves toward (gender and accent read the pair)
EDIT_TARGETS = {"faster": "fast", "slower": "slow", "add_laughter": "laughter",
                "remove_laughter": "no_laughter"}
ACCENT_PREFIX = "accent:"


def edit_target(pair: dict) -> str:
    """The rubric target of a TinyEdit pair, so that an edit is judged by steering's questions."""
    op = pair["operation"]
    if op == "gender":
        return pair["target_gender"]
    if op == "accent":
        return ACCENT_PREFIX + pair["target_accent"]
    if op in EDIT_TARGETS:
        return EDIT_TARGETS[op]
    raise ValueError(f"no rubric target for edit operation {op!r}")


def _if(question: str, right: str, wrong: list[str]) -> dict:
    return {"category": IF, "question": question, "right_choice": right, "wrong_choices": wrong}


def rubrics(target: str) -> list[dict]:
    """The target reached (IF); same words, and same speaker or rate where the target keeps it
    (CR). Targets: laughter, no_laughter, male, female, slow, fast, accent:<espeak code>."""
    if target in ("laughter", "no_laughter"):
        yes = target == "laughter"
        return [_if(LAUGHTER_Q, "Yes" if yes else "No", ["No" if yes else "Yes"]), WORDS, SPEAKER]
    if target in ("male", "female"):
        other = "Female" if target == "male" else "Male"
        return [_if(GENDER_Q, target.capitalize(), [other, NONE]), WORDS, SAME_RATE]
    if target in ("slow", "fast"):
        right, wrong = ("Slower", "Faster") if target == "slow" else ("Faster", "Slower")
        return [_if(RATE_Q, right, [wrong, "About the same", NONE]), WORDS, SPEAKER]
    if target.startswith(ACCENT_PREFIX):
        code = target[len(ACCENT_PREFIX):]
        accent = ACCENTS.get(code, code)
        return [_if(ACCENT_Q, accent, [a for a in ACCENTS.values() if a != accent][:3]),
                WORDS, SPEAKER]
    raise ValueError(f"no rubrics for target {target!r}")


def own_instruction(t: Target) -> str:
    """The MMAE instruction of a concept of your own's target: its `--concept-instruction`, or
    a plain request for its positive group."""
    return t.instruction or f"Make the speech match the description '{t.name}'."


def own_rubrics(t: Target) -> list[dict]:
    """A concept of your own: its `--concept-rubric` question (default: does the output match
    the concept's name), answered Yes when reached (IF); same words and same speaker (CR). The
    acoustic judge has no instrument for it and reports it unsupported; the API judge asks."""
    question = t.rubric or f"Does <audio output> match the description '{t.name}'?"
    return [_if(question, "Yes", ["No"]), WORDS, SPEAKER]


@dataclass(frozen=True)
class SetItem:
    """One edit to judge: `source` is <audio input1>, `output` the edited audio."""

    sample_id: str
    instruction: str
    source: Wav
    output: Wav
    target: str
    """rubric target (see `rubrics`)"""
    tags: tuple[str, ...] = ()
    operation: str = "alteration"
    granularity: str = "global"
    rubric: tuple[dict, ...] = ()
    """the questions, when not `rubrics(target)`'s (a concept of your own's)"""


def write_set(root: Path, items: Sequence[SetItem]) -> tuple[Path, Path]:
    """Write one MMAE set (audio, MMAE-meta.json, predictions.json) under root; returns
    (metadata, predictions). Both steering and TinyEdit go through here, so their samples differ
    only in what was edited, never in how they are asked."""
    samples = [build_sample(root, it.instruction, it.source, it.output,
                            list(it.rubric) or rubrics(it.target),
                            sample_id=it.sample_id, operation=it.operation,
                            granularity=it.granularity, tags=list(it.tags)) for it in items]
    return write_mmae_set(root, samples)


def _judge(pred: Path, meta: Path, root: Path, dest: Path, backend: str,
           api: ApiConfig | None = None) -> dict:
    return judge(JudgeConfig(pred, meta, root, dest, backend=backend, api=api or ApiConfig()))


# ----------------------------------------------------------------------------- steering

def write_sets(rows: list[dict], out: Path, concept: str, method: str = "sae",
               definition: Concept | None = None) -> dict[str, Path]:
    """One MMAE set per (target, strength) of `method` under out/mmae/<target>_s<strength>/
    (another method than sae: out/mmae/<method>/<target>_s<strength>/, named so), the
    unsteered output (method none) of the same item as input; returns {name: folder}. The
    presets' targets are asked `INSTRUCTIONS` and `rubrics`; a concept of your own
    (`definition`) its instruction and rubric (`own_instruction`, `own_rubrics`)."""
    def asked(target: str) -> tuple[str, tuple[dict, ...]]:
        if definition is None or definition.preset:
            return INSTRUCTIONS[target], ()
        t = definition.target(target)
        return own_instruction(t), tuple(own_rubrics(t))

    base = {r["item"]: r for r in rows if r["method"] == "none"}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["method"] == method and r["item"] in base:
            name = f"{r['target']}_s{r['strength']:g}"
            groups.setdefault(name if method == "sae" else f"{method}/{name}", []).append(r)
    sets = {}
    for name, rs in sorted(groups.items()):
        root = out / "mmae" / name
        write_set(root, [SetItem(
            make_sample_id(concept, name, str(r["item"])), asked(r["target"])[0],
            out / base[r["item"]]["wav"], out / r["wav"], r["target"],
            tags=(concept, r["target"], f"strength={r['strength']:g}"),
            rubric=asked(r["target"])[1]) for r in rs])
        sets[name] = root
    return sets


def _set_scores(summary: dict) -> dict:
    o = summary["overall"]
    return {k: o.get(k) for k in ("IFR", "CR", "EMR")} | {
        "n": summary["n_samples"], "unjudged": summary["samples_unjudged"]}


def judge_sets(sets: dict[str, Path], out: Path, backend: str, base_url: str = "",
               model: str = "") -> dict:
    """Judge every set, then Identity and Noise controls of each target's strongest set (the
    controls only calibrate the judge, so one strength is enough); IFR/CR/EMR of each."""
    api = ApiConfig(**{k: v for k, v in (("base_urls", (base_url,) if base_url else None),
                                         ("model", model or None)) if v is not None})
    scores: dict = {}
    for name, root in sets.items():
        scores[name] = _set_scores(_judge(root / "predictions.json", root / "MMAE-meta.json",
                                          root, out / "judge" / name, backend, api))
    strongest: dict[str, str] = {}
    for name in sets:  # per target, the set of the largest strength (of whichever method: the
        # controls answer with the input or with noise, so they do not depend on the method)
        target, s = name.rsplit("_s", 1)
        target = target.rsplit("/", 1)[-1]
        if target not in strongest or float(s) > float(strongest[target].rsplit("_s", 1)[1]):
            strongest[target] = name
    for name in strongest.values():
        root = sets[name]
        dest = out / "judge" / f"controls_{name}"
        for kind, pred in write_controls(root / "MMAE-meta.json", root, dest).items():
            scores[f"{kind} ({name})"] = _set_scores(_judge(
                pred, root / "MMAE-meta.json", root, dest / f"{kind}_judged", backend, api))
    return scores


# ----------------------------------------------------------------------------- TinyEdit

def _edit_item(it: dict, sr: int) -> SetItem:
    pair = it["pair"]
    return SetItem(make_sample_id("tinyedit", it.get("sample_key", pair["pair_id"])),
                   pair["instruction"], it["source"], (it["output"], sr), edit_target(pair),
                   tags=(pair["operation"],), operation=pair["mmae_operation"],
                   granularity=pair["granularity"])


def _reference_set(root: Path, ref: str, meta: Path, ids: list[str], wavs: list, sr: int
                   ) -> Path:
    """predictions.json of a reference system (oracle, codec_oracle): sample `ids[i]` answered
    by `wavs[i]` (a path, or an array written under root/ref/)."""
    by_id = {m["id"]: m for m in json.loads(meta.read_text())}
    rows = []
    for sid, wav in zip(ids, wavs, strict=True):
        if not isinstance(wav, (str, Path)):
            path = root / ref / f"{sid}.wav"
            _write_wav(path, wav, sr)
            wav = path
        rows.append(with_output(by_id[sid], str(Path(wav).resolve())))
    pred = root / ref / "predictions.json"
    pred.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(pred, rows)
    return pred


def judge_edits(items: list[dict], root: Path, sr: int = SAMPLE_RATE, name: str = "tinyedit",
                references: bool = True) -> dict:
    """`items`: {pair, source (path), target (path), target_codec (array), output (array)
    [, sample_key]}. Writes the MMAE set under root and judges the outputs (as `name`) and, with
    `references`, the Identity, Noise, oracle and codec-oracle sets; IFR/CR/EMR overall and per
    operation for each. `sample_key` (default: the pair id) names the sample, so that outputs of
    one pair made differently (e.g. another steering strength) are judged afresh, not resumed."""
    root = Path(root)
    set_items = [_edit_item(it, sr) for it in items]
    ids = [s.sample_id for s in set_items]
    meta, preds = write_set(root, set_items)
    sets = {name: preds}
    if references:
        sets.update(write_controls(meta, root, root / "controls"))
        for ref, key in (("oracle", "target"), ("codec_oracle", "target_codec")):
            if all(it[key] is not None for it in items):
                sets[ref] = _reference_set(root, ref, meta, ids, [it[key] for it in items], sr)
    op_of = {sid: it["pair"]["operation"] for sid, it in zip(ids, items, strict=True)}
    return {n: _edit_scores(_judge(pred, meta, root, root / "judged" / n, "acoustic"),
                            root / "judged" / n, op_of)
            for n, pred in sets.items()}


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1, 1), sr, subtype="PCM_16")


def _edit_scores(summary: dict, judged: Path, op_of: dict[str, str]) -> dict:
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
