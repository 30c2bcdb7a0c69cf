"""Write MMAE metadata + predictions from a steering run, so MMAE's scorer and ours can judge it.

    pairs = [build_sample(root, "Make the speaker sound female.", (x_in, sr), (x_out, sr),
                          [gender_rubric, content_rubric], operation="alteration")]
    meta, preds = write_mmae_set(root, pairs)
    judge(JudgeConfig(preds, meta, root, root / "judge", backend="acoustic"))
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from interp.judge.controls import with_output
from interp.judge.format import Rubric, parse_rubric, read_records
from interp.judge.records import write_json_atomic

META_FILE = "MMAE-meta.json"
PREDICTIONS_FILE = "predictions.json"

Wav = str | Path | tuple[np.ndarray, int]  # a sound file, or (samples (T,), sample rate)


def _is_array_wav(w: object) -> bool:
    return isinstance(w, tuple) and len(w) == 2 and isinstance(w[0], np.ndarray)


def _as_list(w: Wav | Sequence[Wav]) -> list[Wav]:
    if _is_array_wav(w) or isinstance(w, (str, Path)):
        return [w]  # type: ignore[list-item]
    return list(w)  # type: ignore[arg-type]


def _digest(w: Wav) -> str:
    if _is_array_wav(w):
        x, sr = w  # type: ignore[misc]
        return hashlib.sha1(np.ascontiguousarray(x).tobytes() + str(sr).encode()).hexdigest()
    return hashlib.sha1(Path(w).read_bytes()).hexdigest()  # type: ignore[arg-type]


def make_sample_id(*parts: str) -> str:
    """24 hex chars (sha1 prefix) of the parts, MMAE's id shape."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:24]


def _put(w: Wav, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if _is_array_wav(w):
        x, sr = w  # type: ignore[misc]
        sf.write(str(dest), np.clip(np.asarray(x, dtype=np.float32), -1, 1), int(sr),
                 subtype="PCM_16")
    else:
        src = Path(w)  # type: ignore[arg-type]
        if src.suffix.lower() == ".wav":
            shutil.copyfile(src, dest)
        else:
            x, sr = sf.read(str(src), dtype="float32")
            sf.write(str(dest), x, sr, subtype="PCM_16")


def _rubric_dict(r: Rubric | dict, sid: str, i: int) -> dict:
    d = r if isinstance(r, dict) else {"category": r.category, "question": r.question,
                                       "right_choice": r.right_choice,
                                       "wrong_choices": list(r.wrong_choices)}
    parse_rubric(sid, i, d)  # validate
    return {k: d[k] for k in ("category", "question", "right_choice", "wrong_choices")}


def build_sample(
    root: Path, instruction: str, input_wav: Wav | Sequence[Wav], output_wav: Wav,
    rubrics: Sequence[Rubric | dict], *, sample_id: str | None = None,
    operation: str = "alteration", granularity: str = "global", complexity: str = "single",
    modality: str = "speech", tags: Sequence[str] = (),
) -> tuple[dict, dict]:
    """(metadata entry, prediction entry) for one edit; audio is written under `root`.

    Inputs go to `wav/<id>/audio{k}.wav`, the output to `pred/<id>/output.wav`, both referenced
    relative to `root` (use it as --audio_root). The id defaults to a sha1 of the instruction,
    the audio contents and the rubrics, so the same edit gets the same id.
    """
    inputs = _as_list(input_wav)
    if not inputs:
        raise ValueError("build_sample needs at least one input audio")
    rub = [_rubric_dict(r, sample_id or "?", i) for i, r in enumerate(rubrics)]
    if not rub:
        raise ValueError("build_sample needs at least one rubric")
    sid = sample_id or make_sample_id(instruction, *map(_digest, inputs), _digest(output_wav),
                                      json.dumps(rub, sort_keys=True))
    root = Path(root)
    content: list[dict] = [{"type": "text", "text": instruction}]
    for k, w in enumerate(inputs, 1):
        rel = f"wav/{sid}/audio{k}.wav"
        _put(w, root / rel)
        content.append({"type": "audio", "audio_url": rel})
    out_rel = f"pred/{sid}/output.wav"
    _put(output_wav, root / out_rel)
    meta = {"id": sid, "complexity": complexity, "modality": modality,
            "granularity": [granularity], "operations": [
                {"granularity": granularity, "operation": operation}],
            "messages": [{"role": "user", "content": content}], "tags": list(tags),
            "rubrics": rub}
    return meta, with_output(copy.deepcopy(meta), out_rel)


def write_mmae_set(root: Path, pairs: Iterable[tuple[dict, dict]], merge: bool = False
                   ) -> tuple[Path, Path]:
    """Write MMAE-meta.json and predictions.json under root (atomically); returns their paths.

    With merge=True, entries already in the files are kept unless a new pair has the same id.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta_p, pred_p = root / META_FILE, root / PREDICTIONS_FILE
    metas: dict[str, dict] = {}
    preds: dict[str, dict] = {}
    if merge and meta_p.exists() and pred_p.exists():
        metas = {d["id"]: d for d in read_records(meta_p)}
        preds = {d["id"]: d for d in read_records(pred_p)}
    for meta, pred in pairs:
        metas[meta["id"]], preds[pred["id"]] = meta, pred
    write_json_atomic(meta_p, list(metas.values()))
    write_json_atomic(pred_p, list(preds.values()))
    return meta_p, pred_p


def write_mmae_sample(root: Path, *args: object, **kwargs: object) -> str:
    """`build_sample` + merge it into root's MMAE-meta.json / predictions.json; returns the id."""
    meta, pred = build_sample(root, *args, **kwargs)  # type: ignore[arg-type]
    write_mmae_set(root, [(meta, pred)], merge=True)
    return meta["id"]
