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

The experiment runs on the engine `steering.run` uses (`steering.experiment`): the pairs are its
items (`steering.edit_items`), the summaries are in `steering.edit_report`.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import soundfile as sf

from interp.atomic import atomic_write_json
from interp.audio import SAMPLE_RATE
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import load_audio, load_table
from interp.edit.build import load_pairs
from interp.models.registry import load_backbone
from steering.edit_items import (
    METHODS,
    TARGETS,
    EditItem,
    PairSource,
    plan_edit_units,
    read_edit_rows,
    row_strength,
    unit_key,
)
from steering.edit_report import (
    by_strength,
    console_table,
    summarize,
    table_html,
    write_metrics_csv,
)
from steering.experiment import ROWS, Steerer, run_units
from steering.select import select_concept

__all__ = ["METHODS", "ROWS", "TARGETS", "EditSteerConfig", "compare", "read_edit_rows",
           "unit_key"]

DEFAULT_STRENGTH = 4.0


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


def pick_pairs(cfg: EditSteerConfig) -> list[dict]:
    pairs = [p for s in cfg.split.split(",") for p in load_pairs(cfg.pairs, s)]
    out = [p for op in cfg.ops() for p in [q for q in pairs if q["operation"] == op][: cfg.n]]
    if not out:
        raise ValueError(f"no {cfg.split} pairs of {cfg.operations} in {cfg.pairs}; build more "
                         "with `python -m interp.edit build --n-pairs 1200`")
    return out


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


def _selection(cfg: EditSteerConfig, sae, path: Path) -> dict:
    """The steered latents per target: chosen once per --out and saved with the identity of the
    SAE and settings that chose them, so a re-run with another --sae, --k or --seed is refused
    instead of mixing outputs steered through different latents."""
    from sae.io import weights_fingerprint
    from steering.select import load_selection, save_selection

    made_by = {"sae": weights_fingerprint(cfg.sae), "k": cfg.k,
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


def edit_items(pairs: list[dict], folder: str, utts: dict[str, dict], backbone, listener
               ) -> list[EditItem]:
    """The pairs as the engine's items, each source read from the pairs folder when first
    needed."""
    def load(row: dict):
        return load_audio(folder, row)[0]

    return [EditItem(p, PairSource(backbone, partial(load, utts[p["source_id"]]), listener,
                                   p["text_plain"]), i) for i, p in enumerate(pairs)]


def compare(cfg: EditSteerConfig) -> dict:
    """Run (or resume) the comparison and write summary.json and table.html."""
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
    steerer = Steerer(backbone, sae, hook, selection, positions=cfg.positions, seed=cfg.seed)
    utts = {r["utt_id"]: r for r in load_table(cfg.pairs)}
    listen = Listener(Path(cfg.pairs), getattr(backbone, "codec", None))
    units = plan_edit_units(edit_items(pairs, cfg.pairs, utts, backbone, listen), cfg.strength)
    made = {r["key"]: r for r in run_units(steerer, units, out, read_edit_rows(out),
                                            "edit + measure")}
    rows = [made[u.key] for u in units]
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


def pair_rows(out: Path, pairs: list[dict]) -> list[dict]:
    """Every row in the folder of these pairs, at any strength (the dose-response so far)."""
    ids = {p["pair_id"] for p in pairs}
    return [r for r in read_edit_rows(out).values() if r["pair_id"] in ids]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.edit_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, EditSteerConfig)
    cfg = config_from_args(EditSteerConfig, parser.parse_args())
    print(console_table(compare(cfg)))
    print(f"  → {Path(cfg.out) / 'summary.json'}, {Path(cfg.out) / 'metrics.csv'}, "
          f"{Path(cfg.out) / 'table.html'}")


if __name__ == "__main__":
    run_cli(main)
