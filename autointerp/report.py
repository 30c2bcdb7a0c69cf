"""Plotly figures (HTML with plotly.js embedded, so they open offline) and the CLI summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.atomic import atomic_write_text


def figures(records: list[dict], summary: dict, out: Path) -> list[str]:
    """One HTML file holding the three figures; plotly.js is included once."""
    scored = [r for r in records if r["scores"]["auroc"] is not None]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "detection AUROC by modality", "density vs AUROC", "planted-concept recall"))
    for m in ("text", "audio", "mixed"):
        v = [r["scores"]["auroc"] for r in scored if r["modality"] == m]
        if v:
            fig.add_trace(go.Box(y=v, name=f"{m} (n={len(v)})", boxpoints="all"), 1, 1)
        pts = [r for r in scored if r["modality"] == m]
        if pts:
            fig.add_trace(go.Scatter(
                x=[np.log10(max(r["density"], 1e-7)) for r in pts],
                y=[r["scores"]["auroc"] for r in pts], mode="markers", name=f"{m} latents",
                text=[f"latent {r['latent']}: {r['label']}" for r in pts]), 1, 2)
    rows = summary["planted_recall"]["concepts"]
    names = [r["concept"] for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r["auroc"] for r in rows], name="best latent"), 1, 3)
    fig.add_trace(go.Bar(x=names, y=[r.get("utterance_auroc") for r in rows],
                         name="best latent, utterance level"), 1, 3)
    fig.add_trace(go.Bar(x=names, y=[r["random_auroc"] for r in rows], name="random latent"),
                  1, 3)
    fig.update_xaxes(title_text="log10 density", row=1, col=2)
    fig.update_yaxes(title_text="AUROC", range=[0, 1.02])
    fig.update_layout(height=520, width=1500, title=f"auto-interp, layer {summary['layer']}")
    path = out / "figures.html"
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return [path.name]


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def summary_lines(s: dict) -> list[str]:
    lines = [f"auto-interp layer {s['layer']}: {s['n_latents']} latents, "
             f"{s['n_positions']} held-out positions, {s['timings']['total_s']:.0f} s",
             "modality: " + ", ".join(f"{k} {v}" for k, v in s["modality_counts"].items()),
             f"explainer {s['settings']['explainer']}, scorer {s['settings']['scorer']}",
             f"{'':8}{'AUROC mean':>11}{'median':>8}{'n':>6}{'shuffled':>10}"
             f"{'token alone':>13}"]
    for m in ("text", "audio", "mixed", "all"):
        a, c = s["auroc_by_modality"][m], s["shuffled_control"][m]
        ident = (s.get("identity_control") or {}).get(m, {}).get("mean")
        lines.append(f"{m:8}{_fmt(a['mean']):>11}{_fmt(a['median']):>8}{a['n']:>6}"
                     f"{_fmt(c['mean']):>10}{_fmt(ident):>13}")
    if tm := s.get("token_matched"):  # labels against silent occurrences of the same token
        lines.append("same-token pairs (the token alone: 0.5), AUROC | shuffled, share of latents "
                     "contextual:")
        lines += [f"  {m:6}{_fmt(tm['auroc'][m]['mean'])} | "
                  f"{_fmt(tm['shuffled_control'][m]['mean'])}  {_fmt(tm['contextual_share'][m])}"
                  f" (n {tm['auroc'][m]['n']})" for m in ("text", "audio", "mixed", "all")]
    pr = s["planted_recall"]
    lines.append("planted concepts, held-out AUROC of the best latent | a random latent:")
    lines.append(f"  {'concept':24}{'latent':>7}{'positions':>11}{'':3}{'utterances':>12}"
                 f"{'':3}≤{pr['group_size']} together")
    for r in pr["concepts"]:
        utt = (f"{_fmt(r.get('utterance_auroc'))} | {_fmt(r.get('utterance_random_auroc'))}"
               if "utterance_auroc" in r else "")
        lines.append(f"  {r['concept']:24}{r['best_latent']:>7}  {_fmt(r['auroc'])} | "
                     f"{_fmt(r['random_auroc'])}  {utt}  {_fmt(r['group_auroc'])}")
    lines.append(f"recall (AUROC >= {pr['threshold']}): positions {_fmt(pr['recall'])} "
                 f"(random {_fmt(pr['random_recall'])}), utterances "
                 f"{_fmt(pr.get('utterance_recall'))} "
                 f"(random {_fmt(pr.get('utterance_random_recall'))}), ≤{pr['group_size']} "
                 f"latents {_fmt(pr['group_recall'])}")
    return lines
