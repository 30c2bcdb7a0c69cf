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


MODALITY_CARDS = {"audio": "Audio-modal latents", "text": "Text-modal latents",
                  "mixed": "Mixed-modality latents", "dead": "Dead latents (never fire on the store)"}
AUROC_CARDS = {"text": "Detection AUROC, text-modal latents (mean)",
               "audio": "Detection AUROC, audio-modal latents (mean)",
               "mixed": "Detection AUROC, mixed-modality latents (mean)",
               "all": "Detection AUROC, all scored latents (mean)"}
PAPER = "paper, CosyVoice3"  # arXiv 2606.10029: the figures autointerp.run keeps beside its own
RECALL_CARDS = {  # planted_recall's figures (autointerp.score.planted_recall)
    "recall": "Planted concepts recovered (best latent)",
    "group_recall": "Planted concepts recovered (per group)",
    "utterance_recall": "Planted concepts recovered (utterance level)",
    "random_recall": "Planted concepts recovered by a random latent (control)",
    "mean_auroc": "Planted concepts: mean AUROC of the best latent",
    "random_mean_auroc": "Planted concepts: mean AUROC of a random latent (control)"}
NAMED_CARDS = {"n_positions": "Held-out positions", "dead_frac": "Dead latents (share)",
               "mean_auroc": "Detection AUROC (mean)", "explainer": "Explainer",
               "scorer": "Scorer"}
CARDS_DONE = ("layer", "n_latents", "n_positions", "modality_counts", "auroc_by_modality",
              "paper_auroc_cosyvoice3", "planted_recall", "figures", *SUMMARY_SKIP)


def card(name: str, value: Any, key: str, note: str | None = None) -> dict:
    """One index card: a human `name`, its `value`, the `key` it came from (file and JSON key, the
    card's tooltip) and an optional `note` (the paper's figure, labelled as the paper's)."""
    out = {"name": name, "value": value, "key": key}
    return out | {"note": note} if note else out


def _mean(obj: Any) -> float | None:
    return num(obj.get("mean")) if isinstance(obj, dict) else num(obj)


def _human(key: str) -> str:
    return NAMED_CARDS.get(key) or key.replace("_", " ").replace(".", ", ").capitalize()


def summary_cards(folder: Path, n: int, counts: dict[str, int]) -> list[dict]:
    """The index page's cards for one layer, each with a human name: the latents and their
    modality counts, then `summary.json`'s figures (`python -m autointerp.run`'s: detection AUROC
    by modality beside the paper's, planted-concept recall), then any other top-level number or
    short string it holds. A missing or malformed summary.json gives the counts alone."""
    cards = [card("Latents", n, "latents.jsonl: rows")]
    cards += [card(MODALITY_CARDS.get(m, f"{m} latents"), c, f"latents.jsonl: modality {m}")
              for m, c in counts.items()]
    path = folder / "summary.json"
    try:
        obj = json.loads(path.read_text()) if path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is malformed; the index shows no summary figures", path)
        obj = {}
    if not isinstance(obj, dict):
        return cards
    if num(obj.get("n_positions")) is not None:
        cards.append(card(NAMED_CARDS["n_positions"], obj["n_positions"], "summary.json: n_positions"))
    auroc = obj.get("auroc_by_modality") if isinstance(obj.get("auroc_by_modality"), dict) else {}
    paper = obj.get("paper_auroc_cosyvoice3")
    paper = paper if isinstance(paper, dict) else {}
    for m, name in AUROC_CARDS.items():
        ours, theirs = _mean(auroc.get(m)), num(paper.get(m))
        if ours is not None or theirs is not None:
            note = f"{PAPER}: {theirs:g}" if theirs is not None else None
            cards.append(card(name, ours, f"summary.json: auroc_by_modality.{m}.mean", note))
    control = obj.get("shuffled_control") if isinstance(obj.get("shuffled_control"), dict) else {}
    if _mean(control.get("all")) is not None:
        cards.append(card("Detection AUROC, shuffled labels (control, mean)",
                          _mean(control["all"]), "summary.json: shuffled_control.all.mean"))
    ident = obj.get("identity_control") if isinstance(obj.get("identity_control"), dict) else {}
    if _mean(ident.get("all")) is not None:
        cards.append(card("Detection AUROC, the position's token alone (control, mean)",
                          _mean(ident["all"]), "summary.json: identity_control.all.mean"))
    matched = obj.get("token_matched") if isinstance(obj.get("token_matched"), dict) else {}
    for m in ("text", "audio"):  # against silent occurrences of the same token
        if _mean((matched.get("auroc") or {}).get(m)) is not None:
            share = num((matched.get("contextual_share") or {}).get(m))
            cards.append(card(f"Detection AUROC, {m} latents, same-token pairs (the token alone:"
                              " 0.5)", _mean(matched["auroc"][m]),
                              f"summary.json: token_matched.auroc.{m}.mean",
                              None if share is None else f"{share:.0%} of latents contextual"))
    recall = obj.get("planted_recall") if isinstance(obj.get("planted_recall"), dict) else {}
    notes = {}
    if num(recall.get("threshold")) is not None:
        notes["recall"] = f"held-out AUROC ≥ {recall['threshold']:g}"
    if num(recall.get("group_size")) is not None:
        notes["group_recall"] = f"up to {recall['group_size']:g} latents together"
    for k, name in RECALL_CARDS.items():
        if num(recall.get(k)) is not None:
            cards.append(card(name, recall[k], f"summary.json: planted_recall.{k}", notes.get(k)))
    for k, v in obj.items():
        if k in CARDS_DONE or k.endswith("_by_modality") or k in (
                "shuffled_control", "identity_control", "token_matched"):
            continue
        if num(v) is not None or (isinstance(v, str) and len(v) <= 80):
            cards.append(card(_human(k), v, f"summary.json: {k}"))
    return cards[:SUMMARY_MAX]


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
