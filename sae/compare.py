"""`python -m sae.compare --sweeps runs/cmp/batchtopk runs/cmp/matryoshka …`: SAE variants side by
side, from the `sweep.json` each `python -m sae.sweep` run wrote.

One row per variant and layer: architecture, trained positions, width and k; explained variance
(all, speech), L0, dead fraction and loss recovered; planted-concept recall per position and per
utterance; absorption (mean latents a planted concept needs to reach AUROC 0.9, and the share of
concepts that get there); seed stability. Prints the table and writes `<out>/compare.json` and
`<out>/compare.html` (one bar chart per metric). A variant is named by its sweep's folder.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from interp.atomic import atomic_save, atomic_write_json
from interp.cli import add_config_args, config_from_args, run_cli

# (key in a sweep row, column title, what is better)
COLUMNS = (("explained_variance", "EV", "higher"), ("explained_variance_speech", "EV sp", "higher"),
           ("l0", "L0", "—"), ("dead_frac", "dead", "lower"),
           ("loss_recovered", "loss rec", "higher"),
           ("planted_recall", "recall pos", "higher"),
           ("planted_utterance_recall", "recall utt", "higher"),
           # the residual's own linear read (sae.planted.residual_ceiling): recall's ceiling
           ("planted_ceiling_utterance", "ceiling utt", "—"),
           ("absorption_mean", "absorb", "lower, 1 ideal"),
           ("absorption_reached", "reached", "higher"),
           ("seed_stability", "stable", "higher"))


@dataclass(frozen=True)
class CompareConfig:
    """Sweeps of SAE variants to put side by side."""

    sweeps: tuple[str, ...] = ()
    """sweep folders (or their sweep.json), one per variant"""
    out: str = "runs/tinycosy/sae_compare"
    """where compare.json and compare.html go"""


def load_rows(sweeps: tuple[str, ...]) -> list[dict]:
    """Every layer row of every sweep, with `variant` (the sweep's folder name) and the
    settings that tell variants apart."""
    if not sweeps:
        raise ValueError("name the sweeps to compare: --sweeps runs/cmp/batchtopk "
                         "runs/cmp/matryoshka …")
    rows = []
    for item in sweeps:
        path = Path(item) / "sweep.json" if Path(item).is_dir() else Path(item)
        if not path.exists():
            raise FileNotFoundError(f"no sweep.json in {item}; run `python -m sae.sweep --out "
                                    f"{item} …` first")
        data = json.loads(path.read_text())
        cfg = data.get("config", {})
        for r in data["layers"]:
            rows.append({"variant": path.parent.name, "layer": r["layer"],
                         "architecture": r.get("architecture") or cfg.get("architecture",
                                                                          "batchtopk"),
                         "modality": r.get("modality") or cfg.get("modality", "all"),
                         "d_sae": r.get("d_sae") or cfg.get("d_sae"),
                         "k": r.get("k") or cfg.get("k"),
                         **{key: r.get(key) for key, _, _ in COLUMNS}})
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'variant':<16} {'layer':>5} {'arch':<10} {'pos':<6} {'d_sae':>6} {'k':>4} "
            + " ".join(f"{title:>10}" for _, title, _ in COLUMNS))
    lines = [head]
    for r in rows:
        cells = " ".join(f"{'—':>10}" if r[key] is None else f"{r[key]:10.3f}"
                         for key, _, _ in COLUMNS)
        lines.append(f"{r['variant'][:16]:<16} {r['layer']:>5} {r['architecture'][:10]:<10} "
                     f"{r['modality'][:6]:<6} {r['d_sae']!s:>6} {r['k']!s:>4} {cells}")
    lines.append("better: " + "; ".join(f"{title} {better}" for _, title, better in COLUMNS
                                        if better != "—"))
    return "\n".join(lines)


def figure(rows: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    per_row = (len(COLUMNS) + 1) // 2
    fig = make_subplots(rows=2, cols=per_row, subplot_titles=[t for _, t, _ in COLUMNS])
    for layer in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == layer]
        for i, (key, _, _) in enumerate(COLUMNS):
            fig.add_trace(go.Bar(x=[r["variant"] for r in mine], y=[r[key] for r in mine],
                                 name=f"layer {layer}", legendgroup=str(layer),
                                 showlegend=i == 0), row=i // per_row + 1, col=i % per_row + 1)
    fig.update_layout(barmode="group", height=700, title="SAE variants")
    return fig


def run_compare(cfg: CompareConfig) -> list[dict]:
    rows = load_rows(cfg.sweeps)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "compare.json", {"rows": rows, "sweeps": list(cfg.sweeps)})
    fig = figure(rows)
    atomic_save(out / "compare.html", lambda p: fig.write_html(p, include_plotlyjs=True))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sae.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, CompareConfig)
    cfg = config_from_args(CompareConfig, parser.parse_args())
    rows = run_compare(cfg)
    print(table(rows))
    print(f"→ {cfg.out}/compare.json, compare.html")


if __name__ == "__main__":
    run_cli(main)
