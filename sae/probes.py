"""`python -m sae.probes`: linear concept probes per layer, on raw residuals and on SAE latents.

For each layer and each planted concept of the corpus — laughter at a speech position, the
speaker's gender, accent and rate bin (of the waveform the position sounds in), any other column
of the corpus named in --concepts, and a concept of your own (`--concept whisper --groups
style=whisper style=default`: the two groups' positions, see interp.concepts) — a logistic
regression is trained on speech positions of *training voices* and scored on positions of
*held-out voices*, on the raw residual and, where the layer has an SAE, on its latents. A control
probe is trained on the same positions with shuffled labels and should sit at chance.

The probe data come from activation stores (`python -m interp.cache`): either two stores, one
over `--split train` (`--store`) and one over `--split heldout_voices` (`--test-store`), which is
the recommended form because `--max-utts` keeps the first N rows of the selected splits and the
held-out voices are only ~6% of the corpus; or one store over `--split train,heldout_voices`
(`--test-store ''`). Either way training positions are those of train-split utterances and test
positions those of heldout_voices utterances. Writes `<out>/probes.json` and `<out>/probes.html`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from interp.atomic import atomic_save, atomic_write_json
from interp.cache import parse_layers
from interp.cli import add_config_args, config_from_args, run_cli
from interp.concepts import define
from interp.models.registry import load_backbone
from interp.store import ActivationStore
from interp.store.writer import MANIFEST
from sae.io import load_sae, read_cfg
from sae.probes_data import (
    CONCEPTS,
    TEST_SPLIT,
    TRAIN_SPLIT,
    check_stores,
    concept_splits,
    gather,
    speech_positions,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeConfig:
    """Concept probes on one or two activation stores (see the module docstring)."""

    store: str = "runs/tinycosy/probe_acts/train"
    """activation store with the training voices (built over --split train)"""
    test_store: str = "runs/tinycosy/probe_acts/heldout_voices"
    """store with the held-out voices (--split heldout_voices); '' = take them from --store,
    built over --split train,heldout_voices"""
    corpus: str = "runs/tinycosy/corpus"
    """corpus the stores were cached from (its table gives the labels)"""
    model: str = ""
    """backbone the stores must come from (`load_backbone` name or dir; '' = whichever they
    name): checked by its weights' fingerprint"""
    layers: str = ""
    """layers to probe, e.g. 4,8,12 ('' = every layer both stores hold)"""
    sae_root: str = "runs/tinycosy/sae"
    """latents are probed too where <sae-root>/layer_L/cfg.json exists ('' = none)"""
    saes: tuple[str, ...] = ()
    """SAE folders as L=path (e.g. 12=runs/demo/sae/layer_12); they take precedence"""
    concepts: tuple[str, ...] = CONCEPTS
    """concepts to probe: laughter gender accent rate, or any column of the corpus (one class
    per value, e.g. style)"""
    concept: str = ""
    """a concept of your own, probed beside --concepts: its name (with --groups)"""
    groups: tuple[str, ...] = ()
    """--concept's positive group and optionally its negative one (default: every other speech
    position), e.g. style=whisper style=default or tag=breath (interp.concepts)"""
    max_train: int = 4000
    """training positions per concept (sampled at random, after class balancing)"""
    max_test: int = 4000
    """test positions per concept (a uniform sample of the held-out voices' positions)"""
    balance: bool = True
    """train on equally many positions of each class"""
    reg_c: float = 1.0
    """inverse L2 strength of the logistic regression (features are standardised)"""
    max_iter: int = 300
    """L-BFGS iterations per probe"""
    seed: int = 0
    """seed of the position samples and of the shuffled-label control"""
    out: str = "runs/tinycosy/probes"
    """where probes.json and probes.html go"""
    threads: int = 1
    """CPU threads for torch and BLAS"""


def probe_score(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray,
                cfg: ProbeConfig) -> dict[str, float]:
    """Accuracy and balanced accuracy on the test positions of a standardised logistic
    regression trained on (x_tr, y_tr)."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.reg_c, max_iter=cfg.max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # a predicted class absent from y_te
        clf.fit(x_tr, y_tr)
        pred = clf.predict(x_te)
        return {"accuracy": round(float(accuracy_score(y_te, pred)), 4),
                "balanced_accuracy": round(float(balanced_accuracy_score(y_te, pred)), 4)}


def chance(y_tr: np.ndarray, y_te: np.ndarray) -> dict[str, float]:
    """Chance levels: accuracy of always predicting the test set's commonest class, and the
    balanced accuracy of any constant or random guess (1 / classes in the test set)."""
    _, counts = np.unique(y_te, return_counts=True)
    return {"chance_accuracy": round(float(counts.max() / counts.sum()), 4),
            "chance_balanced_accuracy": round(1 / len(counts), 4)}


def find_saes(cfg: ProbeConfig, layers: tuple[int, ...]) -> dict[int, str]:
    """Layer → SAE folder: explicit --saes first, then <sae-root>/layer_L when it has cfg.json."""
    found: dict[int, str] = {}
    if cfg.sae_root:
        for layer in layers:
            if (Path(cfg.sae_root) / f"layer_{layer}" / "cfg.json").exists():
                found[layer] = str(Path(cfg.sae_root) / f"layer_{layer}")
    for item in cfg.saes:
        layer, sep, path = item.partition("=")
        if not sep or not layer.strip().isdigit():
            raise ValueError(f"--saes {item!r}: write LAYER=FOLDER, e.g. 12=runs/demo/sae/layer_12")
        found[int(layer)] = path
    return {layer: p for layer, p in sorted(found.items()) if layer in layers}


@torch.no_grad()
def encode(sae, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(n, d_sae) float32 SAE latents of raw activations x (n, d)."""
    parts = [sae.encode(torch.from_numpy(x[i : i + chunk])).float().numpy()
             for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, sae.cfg.d_sae), np.float32)


def open_stores(cfg: ProbeConfig) -> tuple[list[str], tuple[int, ...]]:
    """The store folders and the layers to probe (checked against what the stores hold)."""
    folders = [cfg.store] + ([cfg.test_store] if cfg.test_store else [])
    held = []
    for f in folders:
        path = Path(f) / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"no activation store in {f}; build one with `python -m "
                                    f"interp.cache --layers 4,8,12 --split train --out {f}`")
        held.append(set(json.loads(path.read_text())["spec"]["layers"]))
    common = set.intersection(*held)
    layers = parse_layers(cfg.layers, 10_000) if cfg.layers else tuple(sorted(common))
    missing = [layer for layer in layers if layer not in common]
    if missing:
        raise ValueError(f"layer {missing[0]} is not in every store (they share {sorted(common)})")
    return folders, layers


def open_sae(folder: str, store: ActivationStore) -> tuple[object, dict]:
    """The SAE of `folder`, checked to fit the store's hook and width, and what it is."""
    hook = f"blocks.{store.layer}.{store.hook}"
    cfg = read_cfg(folder)
    if cfg["d_in"] != store.d_model:
        raise ValueError(f"the SAE in {folder} has d_in {cfg['d_in']}, the store "
                         f"{store.d_model}")
    sae = load_sae(folder, hook=hook)
    meta = cfg.get("metadata", {})
    same = meta.get("model_fingerprint") == store.manifest["spec"]["model"]
    if not same:
        log.warning("the SAE in %s was trained on another model's activations", folder)
    return sae, {"path": str(folder), "d_sae": cfg["d_sae"], "hook": hook,
                 "trained_on_store": meta.get("store"), "same_model": same}


def probe_row(split, labels: np.ndarray, union: np.ndarray, feats: np.ndarray, layer: int,
              kind: str, cfg: ProbeConfig) -> dict:
    """One concept × layer × feature kind: the probe, its shuffled-label control, chance."""
    tr, te = np.searchsorted(union, split.train), np.searchsorted(union, split.test)
    y_tr, y_te = labels[split.train], labels[split.test]
    real = probe_score(feats[tr], y_tr, feats[te], y_te, cfg)
    y_shuf = np.random.default_rng(cfg.seed).permutation(y_tr)
    control = probe_score(feats[tr], y_shuf, feats[te], y_te, cfg)
    return {"concept": split.concept, "layer": layer, "features": kind, **real,
            **{f"shuffled_{k}": v for k, v in control.items()}, **chance(y_tr, y_te),
            "n_train": len(tr), "n_test": len(te), "d": feats.shape[1]}


def _class_counts(pos, split) -> str:
    """Positions per class of a concept in the train and test pools (for an error)."""
    y = pos.labels[split.concept]
    parts = []
    for part, name in ((TRAIN_SPLIT, "train"), (TEST_SPLIT, "heldout_voices")):
        vals, n = np.unique(y[(pos.split == part) & (y != "")], return_counts=True)
        parts.append(f"{name}: " + (", ".join(f"{v} {k}" for v, k in zip(vals, n, strict=True))
                                    or "none"))
    return "; ".join(parts)


def concept_info(pos, splits) -> dict:
    """Per concept: class counts and voices of its training and test positions."""
    info = {}
    for s in splits:
        y = pos.labels[s.concept]
        info[s.concept] = {
            part: {"classes": {str(c): int(n) for c, n in zip(*np.unique(y[idx],
                                                                          return_counts=True),
                                                                strict=True)},
                   "voices": len(set(pos.voice[idx]))}
            for part, idx in (("train", s.train), ("test", s.test))}
    return info


def run_probes(cfg: ProbeConfig) -> dict:
    """Probe every layer and concept; write probes.json + probes.html and return the JSON."""
    torch.set_num_threads(cfg.threads)
    folders, layers = open_stores(cfg)
    stores = [ActivationStore(f, layers[0]) for f in folders]
    check_stores(stores, cfg.corpus)
    if cfg.model and load_backbone(cfg.model, "cpu").fingerprint != stores[0].manifest["spec"][
            "model"]:
        raise ValueError(f"{folders[0]} was not cached from {cfg.model}; pass the --model it "
                         "came from (or none)")
    own = [define(cfg.concept, cfg.groups)] if cfg.concept or cfg.groups else []
    if own and own[0].name in cfg.concepts:
        raise ValueError(f"--concept {own[0].name!r} is also in --concepts; name it differently")
    pos = speech_positions(stores, cfg.corpus, (*cfg.concepts, *own))
    names = (*cfg.concepts, *(c.name for c in own))
    all_splits = concept_splits(pos, names, cfg.max_train, cfg.max_test, cfg.balance, cfg.seed)
    for s in all_splits:
        if own and s.concept == own[0].name and not (len(s.train) and len(s.test)):
            raise ValueError(f"--concept {s.concept}: no training or held-out-voice positions "
                             f"of both groups ({_class_counts(pos, s)}); the probe needs both "
                             "groups in the train and heldout_voices splits")
    splits = [s for s in all_splits if len(s.train) and len(s.test)]
    if not splits:
        raise ValueError("no concept has training and held-out-voice positions of two classes")
    union = np.unique(np.concatenate([np.r_[s.train, s.test] for s in splits]))
    saes = find_saes(cfg, layers)
    rows, sae_info = [], {}
    bar = tqdm(total=(len(layers) + len(saes)) * len(splits), unit="probe", desc="probes")
    with threadpool_limits(cfg.threads), bar:
        for layer in layers:
            stores = [ActivationStore(f, layer) for f in folders]
            feats = {"raw": gather(stores, pos, union)}  # (n, d)
            if layer in saes:
                sae, sae_info[layer] = open_sae(saes[layer], stores[0])
                feats["sae"] = encode(sae, feats["raw"])  # (n, d_sae)
            for kind, x in feats.items():
                for s in splits:
                    bar.set_postfix_str(f"L{layer} {kind} {s.concept}")
                    rows.append(probe_row(s, pos.labels[s.concept], union, x, layer, kind, cfg))
                    bar.update(1)
    result = {"config": dataclasses.asdict(cfg), "stores": folders, "layers": list(layers),
              "saes": sae_info, "concepts": concept_info(pos, splits), "probes": rows}
    if own:
        result["definitions"] = {c.name: c.to_dict() for c in own}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "probes.json", result)
    fig = figure(rows)
    atomic_save(out / "probes.html", lambda p: fig.write_html(p, include_plotlyjs=True))
    return result


def figure(rows: list[dict]):
    """Balanced accuracy per layer: raw (solid), SAE (dashed), shuffled control (dotted)."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    for i, concept in enumerate(concepts):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        for kind, key, dash in (("raw", "balanced_accuracy", "solid"),
                                ("sae", "balanced_accuracy", "dash"),
                                ("raw", "shuffled_balanced_accuracy", "dot")):
            sel = [r for r in rows if r["concept"] == concept and r["features"] == kind]
            if not sel:
                continue
            name = f"{concept} {kind}" + (" shuffled" if key.startswith("shuffled") else "")
            fig.add_trace(go.Scatter(x=[r["layer"] for r in sel], y=[r[key] for r in sel],
                                     name=name, legendgroup=concept, mode="lines+markers",
                                     line={"color": color, "dash": dash}))
    fig.update_layout(title="Concept probes on held-out voices (balanced accuracy; dotted: "
                      "shuffled-label control)", xaxis_title="layer",
                      yaxis_title="balanced accuracy", yaxis_range=[0, 1.02])
    return fig


def summary(result: dict) -> str:
    """One screen: balanced accuracy per concept × layer, raw and SAE, with the controls."""
    def cell(r: dict | None) -> str:
        if r is None:
            return f"{'—':>15}"
        return f"{r['balanced_accuracy']:6.3f} ({r['shuffled_balanced_accuracy']:.3f})"

    by = {(r["concept"], r["layer"], r["features"]): r for r in result["probes"]}
    lines = ["balanced accuracy on held-out voices (shuffled-label control in brackets)",
             f"{'concept':<9} {'chance':>6} {'layer':>5} {'raw':>15} {'sae':>15} {'raw acc':>7}"
             f" {'n train/test':>12}"]
    for concept in result["concepts"]:
        for layer in result["layers"]:
            raw = by.get((concept, layer, "raw"))
            if raw is None:
                continue
            lines.append(f"{concept:<9} {raw['chance_balanced_accuracy']:6.3f} {layer:>5} "
                         f"{cell(raw)} {cell(by.get((concept, layer, 'sae')))} "
                         f"{raw['accuracy']:7.3f} {raw['n_train']:>6}/{raw['n_test']:<5}")
    for layer, info in result["saes"].items():
        lines.append(f"SAE layer {layer}: {info['path']} (d_sae {info['d_sae']}, trained on "
                     f"{info['trained_on_store']}{'' if info['same_model'] else ', OTHER MODEL'})")
    lines.append(f"→ {result['config']['out']}/probes.json, probes.html")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sae.probes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, ProbeConfig)
    cfg = config_from_args(ProbeConfig, parser.parse_args())
    print("\n" + summary(run_probes(cfg)))


if __name__ == "__main__":
    run_cli(main)
