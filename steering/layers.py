"""`python -m steering.layers --concept gender --layers 4,8,12,16,20 [--methods sae,diffmeans] [--n 50]`

Where to steer a concept: the concept–content frontier (`steering.frontier`) of the same methods
at several layers, side by side. Each layer is a frontier folder of its own
(`<out>/layer_L/`: its rows, wavs, frontier.json and figure; a killed run resumes there), with
that layer's SAE (`--sae-root DIR` → `DIR/layer_L`, the layout `python -m sae.sweep` writes;
default: each layer's `runs/tinycosy/sae/layer_L`, else the shipped one) and the layer in the
activation store (`--store` must hold every layer: `python -m interp.cache --layers 4,8,12,16,20`).

Strengths default to the model's own units (`--strength-units resid`: multiples of the mean
per-position residual norm at the hook), so a strength is the same edit size at every layer; in
`dmu` units (‖μ_A − μ_B‖ of each layer) the sizes differ between layers and so would the curves.
The model's own prompt does not depend on the layer: it is run once, at the first layer, and drawn
as a reference line.

Writes layers.json ({target: {method: {layer: {score, ci95, best_strength}}}} with each method's
best layer under `best`), layers.html (score with its 95% CI against the layer, a line per method,
a panel per target) and prints a method × target table of the best layer.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields
from pathlib import Path

from interp.atomic import atomic_write_json, atomic_write_text
from interp.cli import add_config_args, config_from_args, run_cli
from interp.paths import default_sae
from interp.store import ActivationStore
from steering.frontier import FrontierConfig, run_frontier

LAYERS, LAYERS_FIGURE = "layers.json", "layers.html"
REFERENCE = "prompt"  # layer-free: measured once


@dataclass(frozen=True)
class LayersConfig(FrontierConfig):
    """The frontier of the same methods at several layers."""

    layers: str = "4,8,12,16,20"
    """comma-separated layers (each needs its SAE and the layer in --store)"""
    sae_root: str = ""
    """folder of per-layer SAEs (DIR/layer_L, as sae.sweep writes them); empty: each layer's
    runs/tinycosy/sae/layer_L, else the shipped data/sae/layer_L"""
    strength_units: str = "resid"
    """resid (default here): multiples of the mean residual norm at the hook, the same edit size
    at every layer; dmu: multiples of each layer's ‖μ_A − μ_B‖"""

    def default_out(self) -> str:
        return f"runs/tinycosy/layers/{self.concept}"

    def layer_list(self) -> tuple[int, ...]:
        try:
            layers = tuple(dict.fromkeys(int(x) for x in self.layers.split(",") if x.strip()))
        except ValueError:
            raise ValueError(f"--layers {self.layers!r}: give comma-separated layer numbers, "
                             "e.g. 4,8,12,16,20") from None
        if not layers or min(layers) < 0:
            raise ValueError(f"--layers {self.layers!r}: give at least one layer, none negative")
        return layers

    def sae_for(self, layer: int) -> Path:
        return Path(self.sae_root) / f"layer_{layer}" if self.sae_root else default_sae(layer)

    def validate(self) -> None:
        super().validate()
        layers = self.layer_list()
        if self.sae:
            raise ValueError("--sae names one layer's SAE: give --sae-root DIR (DIR/layer_L per "
                             "layer) to steering.layers")
        missing = [L for L in layers if not (self.sae_for(L) / "cfg.json").exists()]
        if missing:
            root = self.sae_root or "runs/tinycosy/sae"
            raise ValueError(
                f"no SAE for layer(s) {missing} under {root}: train them with `python -m "
                f"sae.sweep --layers {','.join(map(str, missing))} --store {self.store} "
                f"--sae-root {root}`")
        for L in layers:  # the store's one-line refusal names the cache command
            ActivationStore(self.store, L, verify=False)

    def frontier(self, layer: int, with_reference: bool) -> FrontierConfig:
        """The frontier config of one layer (its own folder and SAE)."""
        base = {f.name: getattr(self, f.name) for f in fields(FrontierConfig)}
        methods = [m for m in self.method_list() if with_reference or m != REFERENCE]
        return FrontierConfig(**base | {
            "layer": layer, "sae": str(self.sae_for(layer)), "methods": ",".join(methods),
            "out": str(Path(self.out or self.default_out()) / f"layer_{layer}")})


def layer_table(frontiers: dict[int, dict]) -> dict:
    """{layer: frontier.json} → {target: {method: {layer: {score, ci95, best_strength}, …,
    "best": {layer, score}}}}; the prompt reference keeps its one layer."""
    table: dict = {}
    for layer, fr in sorted(frontiers.items()):
        for target, methods in fr.items():
            for method, e in methods.items():
                table.setdefault(target, {}).setdefault(method, {})[str(layer)] = {
                    "score": e["score"], "ci95": e["ci95"], "best_strength": e["best_strength"]}
    for methods in table.values():
        for by_layer in methods.values():
            layer, e = max(by_layer.items(), key=lambda kv: kv[1]["score"])
            by_layer["best"] = {"layer": int(layer), "score": e["score"]}
    return table


def run_layers(cfg: LayersConfig) -> dict:
    """Run (or resume) one frontier per layer; returns the summary written to layers.json."""
    cfg.validate()
    layers = cfg.layer_list()
    out = Path(cfg.out or cfg.default_out())
    start = time.time()
    frontiers, runs = {}, {}
    for i, layer in enumerate(layers):
        summary = run_frontier(cfg.frontier(layer, with_reference=i == 0))
        frontiers[layer] = summary["frontier"]  # what it wrote to frontier.json
        runs[layer] = {"out": summary["out"], "sae": summary["sae"], "hook": summary["hook"],
                       "resid_norm": summary["resid_norm"],
                       "unit_edit_norm": summary["unit_edit_norm"]}
    table = layer_table(frontiers)
    result = {"concept": cfg.concept, "layers": list(layers), "methods": list(cfg.method_list()),
              "strength_units": cfg.strength_units, "n_items": cfg.n, "table": table,
              "runs": {str(k): v for k, v in runs.items()},
              "seconds": round(time.time() - start, 1)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / LAYERS, result)
    figure(table, cfg.concept, layers, cfg.strength_units, out / LAYERS_FIGURE)
    result["out"] = str(out)
    return result


def figure(table: dict, concept: str, layers: tuple[int, ...], units: str, path: Path) -> None:
    """Plotly HTML: frontier score (95% CI bars) against the layer, a line per method, a panel
    per target; the prompt reference as a dashed horizontal line."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    targets = list(table)
    fig = make_subplots(rows=1, cols=max(1, len(targets)), subplot_titles=targets)
    for col, t in enumerate(targets, 1):
        for method, by_layer in table[t].items():
            pts = [(int(k), e) for k, e in by_layer.items() if k != "best"]
            if method == REFERENCE:
                score = pts[0][1]["score"]
                fig.add_trace(go.Scatter(
                    x=[min(layers), max(layers)], y=[score, score], mode="lines",
                    line={"dash": "dash", "color": "#d62728"}, name=f"{method} (any layer)",
                    legendgroup=method, showlegend=col == 1), row=1, col=col)
                continue
            fig.add_trace(go.Scatter(
                x=[k for k, _ in pts], y=[e["score"] for _, e in pts], mode="lines+markers",
                name=method, legendgroup=method, showlegend=col == 1,
                error_y={"type": "data", "symmetric": False,  # no CI (no bootstrap): no bar
                         "array": [(e["ci95"] or [e["score"]] * 2)[1] - e["score"]
                                   for _, e in pts],
                         "arrayminus": [e["score"] - (e["ci95"] or [e["score"]] * 2)[0]
                                        for _, e in pts]},
                text=[f"{method} at layer {k}: {e['score']} @ strength {e['best_strength']:g}"
                      for k, e in pts], hoverinfo="text"), row=1, col=col)
        fig.update_xaxes(title_text="layer", tickvals=list(layers), row=1, col=col)
    fig.update_yaxes(title_text="frontier score", range=[-0.02, 1.02])
    fig.update_layout(title=f"Where to steer {concept}: the frontier score at each layer "
                      f"(strengths in {units} units; 95% CI over items)", height=460)
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))


def console_table(result: dict) -> str:
    """Method × target: the score at each layer, the best starred."""
    table, layers = result["table"], result["layers"]
    lines = [f"frontier score by layer: {result['concept']} ({result['n_items']} items; "
             f"strengths in {result['strength_units']} units) → {result['out']}"]
    for t, methods in table.items():
        lines.append(f"{t:<18}" + "".join(f"L{L:<8}" for L in layers))
        for m, by_layer in methods.items():
            best = by_layer["best"]["layer"]
            cells = []
            for L in layers:
                e = by_layer.get(str(L))
                cells.append("—".ljust(9) if e is None
                             else (f"{e['score']:.3f}" + ("*" if best == L else "")).ljust(9))
            lines.append(f"  {m:<16}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.layers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, LayersConfig, skip=("layer", "sae"))
    result = run_layers(config_from_args(LayersConfig, parser.parse_args()))
    print(console_table(result))
    out = Path(result["out"])
    print(f"  → {out / LAYERS}, {out / LAYERS_FIGURE}; each layer's frontier in {out}/layer_L/")


if __name__ == "__main__":
    run_cli(main)
