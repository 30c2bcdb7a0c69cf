"""Read and check what the dashboard displays: one autointerp layer folder, and steering runs.

Anything missing or malformed is a `ValueError`/`FileNotFoundError` whose one line says what to
run, so `run_cli` prints it instead of a traceback.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODALITIES = ("audio", "text", "mixed", "dead")
EXAMPLE_GROUPS = ("top", "quantiles", "random")
SUMMARY_SKIP = ("settings", "timings")  # run settings, not figures
SUMMARY_MAX = 24


def rerun_hint(layer: int) -> str:
    return f"run `python -m autointerp.run --layer {layer}`"


def layer_dir(autointerp: Path, layer: int) -> Path:
    return autointerp / f"layer_{layer}"


def _load_json(path: Path, layer: int) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: {rerun_hint(layer)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is malformed ({exc}): {rerun_hint(layer)}") from None


def num(x: Any) -> float | None:
    """A finite float, else None (JSON has no NaN; the site must not either)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _check_row(row: Any, where: str) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("latent"), int):
        raise ValueError(f"{where}: expected an object with an integer 'latent'")
    modality = row.get("modality")
    if modality not in MODALITIES:
        raise ValueError(f"{where}: modality {modality!r} is not one of {', '.join(MODALITIES)}")
    scores = row.get("scores") if isinstance(row.get("scores"), dict) else {}
    return {
        "latent": row["latent"],
        "density": num(row.get("density")),
        "max_act": num(row.get("max_act")),
        "mean_act": num(row.get("mean_act")),
        "quantiles": [num(q) for q in row.get("quantiles") or []],
        "modality": modality,
        "speech_frac": num(row.get("speech_frac")),
        "label": row.get("label") if isinstance(row.get("label"), str) else None,
        "explanation": row.get("explanation") if isinstance(row.get("explanation"), str) else None,
        "explainer": str(row.get("explainer") or ""),
        "scores": {"auroc": num(scores.get("auroc")),
                   "balanced_accuracy": num(scores.get("balanced_accuracy")),
                   "scorer": str(scores.get("scorer") or "")},
        "evidence": row.get("evidence") if isinstance(row.get("evidence"), str) else None,
    }


def read_latents(folder: Path, layer: int) -> list[dict]:
    """The rows of `latents.jsonl`, checked and normalised, sorted by latent id."""
    path = folder / "latents.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no auto-interp output for layer {layer} ({path} is missing): "
                                f"{rerun_hint(layer)}")
    rows: dict[int, dict] = {}
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {i}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is malformed ({exc.msg}): {rerun_hint(layer)}") from None
            try:
                row = _check_row(raw, where)
            except ValueError as exc:
                raise ValueError(f"{exc}: {rerun_hint(layer)}") from None
            rows[row["latent"]] = row  # a resumed run may repeat a latent: the last one wins
    if not rows:
        raise ValueError(f"{path} has no latents: {rerun_hint(layer)}")
    return [rows[k] for k in sorted(rows)]


def inside(folder: Path, rel: str, what: str, layer: int) -> Path:
    """`folder / rel`, refused when it would leave `folder` (an absolute path or `..`)."""
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ValueError(f"{what} {rel!r} points outside {folder}: {rerun_hint(layer)}")
    return path


def read_evidence(folder: Path, row: dict, layer: int) -> dict | None:
    """The evidence file of a latent, checked; None when the latent has none (dead, unscored)."""
    if row["evidence"] is None:
        return None
    path = inside(folder, row["evidence"], "evidence path", layer)
    ev = _load_json(path, layer)
    if not isinstance(ev, dict):
        raise ValueError(f"{path} is malformed (not an object): {rerun_hint(layer)}")
    for group in EXAMPLE_GROUPS:
        examples = ev.get(group) or []
        if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
            raise ValueError(f"{path}: '{group}' must be a list of examples: {rerun_hint(layer)}")
        ev[group] = examples
    return ev


def read_summary(folder: Path) -> dict:
    """`summary.json`'s top-level numbers (optional file; anything else in it is ignored)."""
    path = folder / "summary.json"
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is malformed; the index shows no summary figures", path)
        return {}
    if not isinstance(obj, dict):
        return {}
    out: dict = {}
    for k, v in obj.items():  # top-level figures, and those of one nested level (by modality…)
        if num(v) is not None or (isinstance(v, str) and len(v) <= 80):
            out[k] = v
        elif isinstance(v, dict) and k not in SUMMARY_SKIP:
            out.update({f"{k}.{kk}": vv for kk, vv in v.items() if num(vv) is not None})
    return dict(list(out.items())[:SUMMARY_MAX])


def flat_figures(obj: Any, limit: int = 60) -> dict[str, float | bool]:
    """Every finite number (and yes/no) in a nested JSON object, keyed by its dotted path; lists
    longer than 8 (per-item tables) are left out, and at most `limit` figures are kept."""
    out: dict[str, float | bool] = {}

    def walk(x: Any, key: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(x, list) and len(x) <= 8:
            for i, v in enumerate(x):
                walk(v, f"{key}[{i}]")
        elif isinstance(x, bool):
            out[key] = x
        elif num(x) is not None:
            out[key] = round(float(x), 6)

    walk(obj, "")
    return out


def _steering_layer(sae: dict) -> int | None:
    if isinstance(sae.get("layer"), int):
        return sae["layer"]
    name = Path(str(sae.get("folder") or "")).name
    tail = name.removeprefix("layer_")
    return int(tail) if name.startswith("layer_") and tail.isdigit() else None


STEERING_FIRST = ("effects", "judge")  # the headline figures of `python -m steering.run`
STEERING_SKIP = ("sae", "config", "out", "results")  # settings and per-item tables


def read_steering(root: Path | None) -> Iterator[dict]:
    """One record per steering run under `root/<concept>/summary.json` that names SAE latents:
    `{"concept", "layer", "latents", "by_target", "metrics"}` (metrics: its figures, flattened,
    headline ones first)."""
    if root is None or not root.is_dir():
        return
    for path in sorted(root.glob("*/summary.json")):
        try:
            obj = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("skipping malformed steering summary %s", path)
            continue
        sae = obj.get("sae") if isinstance(obj, dict) else None
        if not isinstance(sae, dict) or not isinstance(sae.get("latents"), list):
            continue
        layer = _steering_layer(sae)
        latents = [x for x in sae["latents"] if isinstance(x, int)]
        if layer is None or not latents:
            continue
        by_target = sae.get("by_target") if isinstance(sae.get("by_target"), dict) else {}
        ordered = {k: obj[k] for k in STEERING_FIRST if k in obj}
        ordered.update({k: v for k, v in obj.items() if k not in STEERING_SKIP})
        yield {"concept": path.parent.name, "layer": layer, "latents": latents,
               "by_target": {str(t): [x for x in v if isinstance(x, int)]
                             for t, v in by_target.items() if isinstance(v, list)},
               "metrics": flat_figures(ordered)}
