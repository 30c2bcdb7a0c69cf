"""Steering an editing LM through SAE latents vs asking it by instruction, in one table.

`python -m steering.edit_compare --sae runs/tinyedit/sae/layer_12` takes held-out TinyEdit pairs,
`n` per operation, and edits each source six ways, all measured by the listening instruments
and scored by the MMAE acoustic judge:

    none              no instruction (the transcript alone): what the editor does unasked
    instruct          the pair's edit instruction (TinyEdit as trained)
    steer             no instruction + the target's SAE latents clamped up (steering.select's
                      contrastive latents, read off TinyEdit's own activations)
    instruct+steer    both
    random_latents    no instruction + as many random latents of similar firing rate, same edit
    random_direction  no instruction + a random residual direction of the same norm

Operations and their targets: gender → the pair's target gender; faster / slower → the fast /
slow rate; add_laughter → laughter; remove_laughter → the laughter latents *ablated* (set to 0;
random latents ablated as its control; no random direction). Accent has no instrument and is
left out. TinyEdit was never trained on a "keep it as it is" instruction (interp.edit.plan has
none), so the neutral input of `none` and `steer` is no instruction at all: TinyCosy's own text
layout, transcript only, which re-speaks the source in its voice.

Each output is one line of `rows.jsonl` (resumable: a re-run edits only what is missing). A
steered output is keyed by its strength too, so re-running the same `--out` with other
`--strengths` adds a dose-response without redoing `none` / `instruct`. `summary.json` has per
operation × method (at this run's strengths) the edit-done rate with its 95% CI, the operation's
own measure, WER, speaker kept, duration ratio and the judge's IFR / CR / EMR, and `by_strength`
the same instrument readings at every strength in the folder; `metrics.csv` has every output;
`table.html` shows the summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from interp.atomic import atomic_save, atomic_write_json
from interp.audio import SAMPLE_RATE
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import load_table
from interp.edit.build import load_pairs
from interp.edit.model import EDIT_SAMPLING
from interp.hooks.intervene import Intervention, intervene
from interp.models.generate import SamplingConfig
from interp.models.registry import load_backbone
from interp.stats import mean_ci
from steering.experiment import read_rows
from steering.select import TargetSelection, select_concept
from steering.steer import LatentEdit, direction_intervention, position_mask, sae_intervention

log = logging.getLogger(__name__)

METHODS = ("none", "instruct", "steer", "instruct+steer", "random_latents", "random_direction")
# operation → (steering.select concept, target or None for the pair's target gender)
TARGETS: dict[str, tuple[str, str | None]] = {
    "gender": ("gender", None), "faster": ("rate", "fast"), "slower": ("rate", "slow"),
    "add_laughter": ("laughter", "laughter"), "remove_laughter": ("laughter", "laughter")}
ROWS = "rows.jsonl"
UNSTEERED = ("none", "instruct")
DEFAULT_STRENGTH = 4.0
# each operation's own instrument reading (the edit measure of the table); a gender edit's is
# P(target gender), P(male) for a pair toward male and 1 − P(male) toward female
MEASURE = {"gender": "p_target_gender", "faster": "duration_ratio", "slower": "duration_ratio",
           "add_laughter": "laughter", "remove_laughter": "laughter"}
CSV_FIELDS = ("pair_id", "operation", "target", "method", "strength", "n_tokens", "seconds",
              "voiced", "f0", "p_male", "laughter", "wer", "done", "speaker_kept",
              "duration_ratio", "wav")


@dataclass(frozen=True)
class EditSteerConfig:
    """Which editor, SAE and pairs; how hard to steer."""

    sae: str = "runs/tinyedit/sae/layer_12"
    """an SAE trained on TinyEdit (python -m sae.train --model tinyedit)"""
    layer: int = 12
    """layer of the SAE's hook (blocks.{layer}.hook_resid_post)"""
    store: str = "runs/tinyedit/acts"
    """TinyEdit activation store the latents are selected from (python -m interp.cache
    --model tinyedit)"""
    pairs: str = "runs/tinyedit/pairs"
    """edit-pairs folder (python -m interp.edit build); its held-out pairs are edited"""
    model: str = "tinyedit"
    """editing backbone (`interp.models.registry.load_backbone`): tinyedit, tinyedit:<dir>,
    editing-lm:<dir>; it must render waveforms"""
    split: str = "heldout_sentences,heldout_voices"
    """pairs splits to edit (comma-separated)"""
    n: int = 8
    """pairs per operation"""
    operations: str = "gender,faster,slower,add_laughter,remove_laughter"
    """operations to compare (comma-separated)"""
    strengths: str = "gender=8,faster=4,slower=4,add_laughter=4"
    """steering strength in units of ‖μ_target − μ_other‖: one number for every operation, or
    op=number pairs (unnamed operations get 4); remove_laughter ablates, strength-free"""
    k: int = 8
    """latents steered per target"""
    positions: str = "speech"
    """where edits apply: speech (source and generated), generated, all"""
    judge: bool = True
    """score every method with the MMAE acoustic judge"""
    seed: int = 0
    """sampling seed (the same for every method of a pair)"""
    out: str = "runs/tinyedit/steer_vs_instruct"
    """output folder"""

    def strength_table(self) -> dict[str, float]:
        """--strengths parsed: every operation named, or one number for all."""
        text = self.strengths.replace(" ", "")
        try:
            if "=" not in text:
                return dict.fromkeys(TARGETS, _finite(float(text)))
            table = {op: _finite(float(v)) for op, v in
                     (kv.split("=") for kv in text.split(",") if kv)}
        except ValueError:
            raise ValueError(f"--strengths {self.strengths!r}: give one number (e.g. 4) or "
                             "op=number pairs (e.g. gender=8,faster=4)") from None
        unknown = sorted(set(table) - set(TARGETS))
        if unknown:
            raise ValueError(f"--strengths names {unknown}; use some of {', '.join(TARGETS)}")
        return {op: table.get(op, DEFAULT_STRENGTH) for op in TARGETS}

    def strength(self, op: str) -> float:
        return self.strength_table()[op]

    def ops(self) -> list[str]:
        ops = [o for o in self.operations.split(",") if o]
        unknown = [o for o in ops if o not in TARGETS]
        if unknown:
            raise ValueError(f"--operations: no steering target for {unknown}; use some of "
                             f"{', '.join(TARGETS)}")
        return ops


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"strength {x} is not a finite number")
    return x


def applied_strength(cfg: EditSteerConfig, op: str, method: str) -> float | None:
    """The strength an output is made at; None where none applies (unsteered, or an ablation)."""
    return None if method in UNSTEERED or op == "remove_laughter" else cfg.strength(op)


def unit_key(pair_id: str, method: str, strength: float | None) -> str:
    """A row's identity: a steered output's strength is part of it."""
    return f"{pair_id}|{method}" if strength is None else f"{pair_id}|{method}|s{strength:g}"


def row_strength(r: dict) -> float | None:
    """The strength a row was made at (rows of older runs record one for every method)."""
    s = r.get("strength")
    return None if s is None or r["method"] in UNSTEERED or r["operation"] == "remove_laughter" \
        else float(s)


def read_edit_rows(out: Path) -> dict[str, dict]:
    """Finished rows by `unit_key`; rows written before keys carried the strength are re-keyed
    by the strength they record."""
    done = {}
    for key, r in read_rows(out).items():
        s = row_strength(r)
        done[unit_key(r["pair_id"], r["method"], s) if key.count("|") == 1 else key] = r
    return done


def pick_pairs(cfg: EditSteerConfig) -> list[dict]:
    pairs = [p for s in cfg.split.split(",") for p in load_pairs(cfg.pairs, s)]
    out = [p for op in cfg.ops() for p in [q for q in pairs if q["operation"] == op][: cfg.n]]
    if not out:
        raise ValueError(f"no {cfg.split} pairs of {cfg.operations} in {cfg.pairs}; build more "
                         "with `python -m interp.edit build --n-pairs 1200`")
    return out


def target_of(pair: dict) -> str:
    return TARGETS[pair["operation"]][1] or pair["target_gender"]


class EditSteerer:
    """TinyEdit with interventions at the SAE's hook during its generation."""

    def __init__(self, backbone, sae, hook: str, selection: dict[str, TargetSelection],
                 positions: str, seed: int):
        self.backbone, self.sae, self.hook = backbone, sae, hook
        self.selection, self.positions, self.seed = selection, positions, seed

    def interventions(self, pair: dict, method: str, strength: float, modality: list[str]
                      ) -> list[Intervention]:
        if method in ("none", "instruct"):
            return []
        sel = self.selection[target_of(pair)]
        mask = position_mask(self.positions, modality)
        ablate = pair["operation"] == "remove_laughter"
        if method in ("steer", "instruct+steer", "random_latents"):
            lat, amt = ((sel.random_latents, sel.random_amounts) if method == "random_latents"
                        else (sel.latents, sel.amounts))
            edit = LatentEdit(tuple(lat), tuple(amt), "set" if ablate else "clamp")
            return [sae_intervention(self.sae, self.hook, edit, 0.0 if ablate else strength,
                                     mask)]
        vec = torch.tensor(sel.random_direction, dtype=torch.float32) * strength
        return [direction_intervention(self.hook, vec, mask)]

    def tokens(self, pair: dict, method: str, strength: float, source: np.ndarray,
               transcript: str, seed: int) -> list[int]:
        if "instruct" in method:
            ids, _ = self.backbone.encode_text(transcript, instruction=pair["instruction"])
        else:  # TinyCosy's own layout, no instruction: the transcript alone
            ids, _ = self.backbone.encode_text(transcript, instruction=None)
        model = self.backbone.model
        ivs = self.interventions(pair, method, strength, model.modality(len(ids), len(source), 0))
        sampling = SamplingConfig(**{**EDIT_SAMPLING.__dict__, "seed": seed})
        with intervene(model, ivs):
            return self.backbone.edit(ids, torch.from_numpy(source), sampling)


def methods_for(op: str) -> tuple[str, ...]:
    return tuple(m for m in METHODS if not (op == "remove_laughter" and m == "random_direction"))


def run_rows(cfg: EditSteerConfig, steerer: EditSteerer, listen, pairs: list[dict], out: Path,
             utts: dict[str, dict], load: Callable) -> list[dict]:
    """Edit, save and measure every (pair, method) not yet in rows.jsonl; returns all rows."""
    from interp.edit.evaluate import judge_one, measure

    done = read_edit_rows(out)
    units = [(p, m, applied_strength(cfg, p["operation"], m))
             for p in pairs for m in methods_for(p["operation"])]
    todo = [u for u in units if unit_key(u[0]["pair_id"], u[1], u[2]) not in done]
    log.info("%d edits planned, %d already done", len(units), len(units) - len(todo))
    src_cache: dict[str, tuple[np.ndarray, np.ndarray, dict]] = {}
    with open(out / ROWS, "a") as f:
        for i, (pair, method, strength) in enumerate(tqdm(todo, desc="edit + measure")):
            pid, text = pair["pair_id"], pair["text_plain"]
            if pid not in src_cache:
                audio = load(utts[pair["source_id"]])
                src_cache[pid] = (audio, steerer.backbone.speech_tokens(audio),
                                  measure(listen, audio, text))
            src_audio, src_tokens, src_m = src_cache[pid]
            seed = cfg.seed + int(pid.lstrip("p") or i)
            toks = steerer.tokens(pair, method, strength or 0.0, src_tokens, text, seed)
            audio = steerer.backbone.render(toks)
            at = "" if strength is None else f"s{strength:g}"
            wav = out / "wav" / method / at / f"{pid}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(wav), audio, SAMPLE_RATE, subtype="PCM_16")
            m = measure(listen, audio, text)
            row = {"key": unit_key(pid, method, strength), "pair_id": pid,
                   "operation": pair["operation"], "target": target_of(pair), "method": method,
                   "strength": strength, "n_tokens": len(toks),
                   "wav": str(wav.relative_to(out)), **m, **judge_one(pair, src_m, m)}
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[row["key"]] = row
    return [done[unit_key(p["pair_id"], m, s)] for p, m, s in units]


def pair_rows(out: Path, pairs: list[dict]) -> list[dict]:
    """Every row in the folder of these pairs, at any strength (the dose-response so far)."""
    ids = {p["pair_id"] for p in pairs}
    return [r for r in read_edit_rows(out).values() if r["pair_id"] in ids]


def write_metrics_csv(rows: list[dict], path: Path) -> None:
    """One line per output, every strength in the folder (blank where none applies)."""
    def save(p: Path) -> None:
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(sorted(({**r, "strength": row_strength(r)} for r in rows),
                               key=lambda r: (r["operation"], METHODS.index(r["method"]),
                                              r["strength"] or 0.0, r["pair_id"])))
    atomic_save(path, save)


def measure_of(r: dict) -> float | None:
    """The row's reading of its operation's own instrument (MEASURE)."""
    if r["operation"] != "gender":
        return r.get(MEASURE[r["operation"]])
    p = r.get("p_male")
    return None if p is None else (p if r["target"] == "male" else 1.0 - p)


def _stats(rs: list[dict]) -> dict:
    op = rs[0]["operation"]
    return {"strength": row_strength(rs[0]),
            "edit_done": mean_ci([None if r["done"] is None else float(r["done"]) for r in rs]),
            "measure": {"name": MEASURE[op], **mean_ci([measure_of(r) for r in rs])},
            **{k: mean_ci([r.get(k) for r in rs]) for k in
               ("wer", "duration_ratio", "p_male", "laughter")},
            "speaker_kept": mean_ci([None if r["speaker_kept"] is None
                                     else float(r["speaker_kept"]) for r in rs])}


def summarize(rows: list[dict]) -> dict:
    """Per operation × method: edit done (mean, 95% CI), the operation's measure, WER, speaker
    kept, duration ratio, P(male), laughter."""
    out: dict = {}
    for op in dict.fromkeys(r["operation"] for r in rows):
        out[op] = {}
        for method in METHODS:
            rs = [r for r in rows if r["operation"] == op and r["method"] == method]
            if rs:
                out[op][method] = _stats(rs)
    return out


def by_strength(rows: list[dict]) -> dict:
    """Per operation × steered method × strength (every strength in the folder): the same
    instrument readings as `summarize`, so repeated runs at other strengths read as a
    dose-response; the unsteered methods are listed once under "-"."""
    out: dict = {}
    for r in rows:
        st = row_strength(r)
        s = "-" if st is None else f"{st:g}"
        out.setdefault(r["operation"], {}).setdefault(r["method"], {}).setdefault(s, []).append(r)
    return {op: {m: {s: _stats(rs) for s, rs in sorted(by_s.items(), key=_strength_order)}
                 for m, by_s in sorted(by_m.items(), key=lambda kv: METHODS.index(kv[0]))}
            for op, by_m in out.items()}


def _strength_order(kv: tuple[str, list]) -> float:
    return -1.0 if kv[0] == "-" else float(kv[0])


def judge_methods(cfg: EditSteerConfig, rows: list[dict], pairs: list[dict], out: Path,
                  utts: dict[str, dict]) -> dict:
    """IFR / CR / EMR of every method (MMAE acoustic judge), with Identity and Noise once."""
    from interp.judge.mmae_sets import judge_edits

    by_id = {p["pair_id"]: p for p in pairs}
    utt_path = {u: Path(cfg.pairs) / r["path"] for u, r in utts.items()}
    scores: dict = {}
    for i, method in enumerate(METHODS):
        items = []
        for r in rows:
            if r["method"] != method:
                continue
            pair = by_id[r["pair_id"]]
            audio, _ = sf.read(str(out / r["wav"]), dtype="float32")
            items.append({"pair": pair, "source": utt_path[pair["source_id"]],
                          "target": utt_path[pair["target_id"]], "target_codec": None,
                          "output": audio,  # a steered output is judged per strength
                          "sample_key": r["pair_id"] if row_strength(r) is None else r["key"]})
        if items:
            got = judge_edits(items, out / "judge" / method, SAMPLE_RATE, name=method,
                              references=i == 0)
            scores.update(got)
    return scores


def table_cells(summary: dict, judged: dict) -> list[list[str]]:
    """Rows of the table: operation, method, strength, edit done (95% CI), the operation's
    measure (95% CI), n, WER, judge IFR / CR / EMR."""
    rows = []
    for op, by_m in summary.items():
        for method, s in by_m.items():
            e, m = s["edit_done"], s["measure"]
            j = judged.get(method, {}).get("by_operation", {}).get(op, {})
            strength = s.get("strength")
            rows.append([op, method, "—" if strength is None else f"{strength:g}",
                         _pct(e["mean"], e["ci95"]),
                         f"{m['name']} {_f(m['mean'])} [{_f(m['ci95'][0])}, {_f(m['ci95'][1])}]",
                         str(e["n"]), _f(s["wer"]["mean"]), _f(j.get("IFR"), 0),
                         _f(j.get("CR"), 0), _f(j.get("EMR"), 0)])
    return rows


TABLE_HEADER = ["operation", "method", "strength", "edit done (95% CI)", "measure (95% CI)", "n",
                "WER", "judge IFR", "judge CR", "judge EMR"]


def table_html(summary: dict, judged: dict, path: Path) -> None:
    """One plotly table: operation × method, edit done and the operation's measure with their
    CIs, WER, judge IFR / CR / EMR."""
    import plotly.graph_objects as go

    rows = table_cells(summary, judged)
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in TABLE_HEADER]
    fig = go.Figure(go.Table(header={"values": TABLE_HEADER}, cells={"values": cols}))
    fig.update_layout(title="TinyEdit: steering through SAE latents vs asking by instruction",
                      height=60 + 24 * len(rows))
    fig.write_html(str(path), include_plotlyjs=True)


def _f(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(m: float | None, ci: list) -> str:
    if m is None:
        return "—"
    return f"{m:.2f} [{max(ci[0], 0):.2f}, {min(ci[1], 1):.2f}]"


def _selection(cfg: EditSteerConfig, sae, path: Path) -> dict:
    """The steered latents per target: chosen once per --out and saved with the identity of the
    SAE and settings that chose them, so a re-run with another --sae, --k or --seed is refused
    instead of mixing outputs steered through different latents."""
    from sae_lens.constants import SAE_WEIGHTS_FILENAME

    from interp.store.writer import fingerprint
    from steering.select import load_selection, save_selection

    made_by = {"sae": fingerprint(Path(cfg.sae) / SAE_WEIGHTS_FILENAME), "k": cfg.k,
               "seed": cfg.seed}
    if path.exists():
        saved = json.loads(path.read_text())
        if "made_by" not in saved:  # written before the identity was recorded
            return load_selection(saved)
        if saved["made_by"] != made_by:
            raise ValueError(f"{path} was chosen with another SAE or settings ({saved['made_by']},"
                             f" now {made_by}); use another --out or delete {path.parent}")
        return load_selection(saved["targets"])
    from interp.store import ActivationStore

    store = ActivationStore(cfg.store, cfg.layer)
    selection: dict = {}
    for concept in dict.fromkeys(TARGETS[o][0] for o in cfg.ops()):
        selection.update(select_concept(sae, store, cfg.pairs, concept, k=cfg.k, seed=cfg.seed))
    atomic_write_json(path, {"made_by": made_by, "targets": save_selection(selection)})
    return selection


def compare(cfg: EditSteerConfig) -> dict:
    """Run (or resume) the comparison and write summary.json and table.html."""
    from interp.corpus.table import load_audio
    from interp.models.evaluate import Listener
    from sae.io import load_sae

    cfg.strength_table()  # a bad --strengths fails before anything loads
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = pick_pairs(cfg)
    backbone = load_backbone(cfg.model, "cpu")
    if why := backbone.render_missing():
        raise ValueError(f"cannot compare edits of {cfg.model}: {why}")
    hook = f"blocks.{cfg.layer}.hook_resid_post"
    sae = load_sae(cfg.sae, backbone, hook)
    selection = _selection(cfg, sae, out / "selection.json")
    steerer = EditSteerer(backbone, sae, hook, selection, cfg.positions, cfg.seed)
    utts = {r["utt_id"]: r for r in load_table(cfg.pairs)}
    listen = Listener(Path(cfg.pairs), getattr(backbone, "codec", None))
    rows = run_rows(cfg, steerer, listen, pairs, out, utts,
                    lambda row: load_audio(cfg.pairs, row)[0])
    summary = summarize(rows)
    every = pair_rows(out, pairs)
    write_metrics_csv(every, out / "metrics.csv")
    judged = judge_methods(cfg, rows, pairs, out, utts) if cfg.judge else {}
    result = {"summary": summary, "by_strength": by_strength(every), "judge": judged,
              "n_pairs": len(pairs),
              "measured_with": listen.kind, "config": asdict(cfg),
              "selection": {t: {"latents": s.latents, "n_positions": s.n_positions}
                            for t, s in selection.items()}}
    atomic_write_json(out / "summary.json", result)
    table_html(summary, judged, out / "table.html")
    return result


def print_table(r: dict) -> None:
    print(f"\nTinyEdit, {r['n_pairs']} held-out pairs ({r['measured_with']}):")
    widths = (16, 17, 8, 18, 36, 3, 5, 5, 5, 5)
    print("  " + " ".join(f"{h[:w]:{w}s}" for h, w in zip(TABLE_HEADER, widths, strict=True)))
    for row in table_cells(r["summary"], r["judge"]):
        print("  " + " ".join(f"{v:{w}s}" for v, w in zip(row, widths, strict=True)))
    for name in ("identity", "noise"):
        o = r["judge"].get(name, {}).get("overall")
        if o:
            print(f"  judge control {name:9s} IFR {_f(o['IFR'], 0)}  CR {_f(o['CR'], 0)}  "
                  f"EMR {_f(o['EMR'], 0)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.edit_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, EditSteerConfig)
    cfg = config_from_args(EditSteerConfig, parser.parse_args())
    r = compare(cfg)
    print_table(r)
    print(f"  → {Path(cfg.out) / 'summary.json'}, {Path(cfg.out) / 'metrics.csv'}, "
          f"{Path(cfg.out) / 'table.html'}")


if __name__ == "__main__":
    run_cli(main)
