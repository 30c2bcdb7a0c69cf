"""Summaries of a steering run: per method, target and strength the mean and 95% CI of every
metric; effects against the unsteered outputs; the issue's goals; a dose-response figure."""

from __future__ import annotations

import csv
from pathlib import Path

from interp.atomic import atomic_save, atomic_write_text
from interp.stats import mean_ci
from steering.experiment import CONCEPT_METRIC, CONTROLS, METRICS

# The target's metric: the presets' instruments, or (a concept of your own) the P(positive group)
# of the classifier fitted on the corpus's two groups.
# the edit methods whose effect on the target's metric the summary lists (a method not run: None)
EFFECT_METHODS = ("sae", "decoder", "diffmeans", "sae_keepnorm", "diffmeans_keepnorm", *CONTROLS)
PRIMARY = {"laughter": "laughter", "male": "p_male", "female": "p_male",
           "slow": "voiced_duration_s", "fast": "voiced_duration_s"}
CSV_FIELDS = ("item", "method", "target", "strength", "voice", "voice_gender", "n_tokens",
              "laughter", "p_male", "voiced_duration_s", "median_f0_hz", "wer", "wer_raw",
              "wav", "text", "transcript")
CONCEPT_CSV_FIELDS = (*CSV_FIELDS[:7], CONCEPT_METRIC, *CSV_FIELDS[7:])


def primary(target: str) -> str:
    return PRIMARY.get(target, CONCEPT_METRIC)


def _stats(rows: list[dict], metrics: tuple[str, ...]) -> dict:
    return {k: mean_ci([r.get(k) for r in rows]) for k in metrics}


def results_table(rows: list[dict], strengths: list[float],
                  metrics: tuple[str, ...] = METRICS) -> list[dict]:
    """One entry per (method, target, strength); strength 0 of a method is the unsteered set."""
    base = [r for r in rows if r["method"] == "none"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["method"] != "none":
            groups.setdefault((r["method"], r["target"], r["strength"]), []).append(r)
    out = [{"method": "none", "target": "-", "strength": 0.0, **_stats(base, metrics)}]
    for method, target in sorted({(m, t) for m, t, _ in groups}):
        if method != "prompt" and 0 in strengths:
            out.append({"method": method, "target": target, "strength": 0.0,
                        **_stats(base, metrics)})
        for (m, t, s), rs in sorted(groups.items()):
            if (m, t) == (method, target):
                out.append({"method": m, "target": t, "strength": s, **_stats(rs, metrics)})
    return out


def _metrics(table: list[dict]) -> list[str]:
    return [k for k, v in table[0].items() if isinstance(v, dict) and "mean" in v]


def _mean(table: list[dict], method: str, target: str, s: float, metric: str) -> float | None:
    for e in table:
        if (e["method"], e["target"], e["strength"]) == (method, target, s):
            return e[metric]["mean"]
    return None


def effects(table: list[dict], targets: list[str], strengths: list[float]) -> dict:
    """Per target and strength: the SAE effect on the target's metric, each baseline's and
    control's, the WER change (points), and whether the issue's goals are met there."""
    base = {k: table[0][k]["mean"] for k in _metrics(table)}
    out: dict = {}
    for t in targets:
        metric = primary(t)
        per: dict = {}
        for s in [s for s in strengths if s != 0]:
            row: dict = {"metric": metric}
            for m in EFFECT_METHODS:
                v = _mean(table, m, t, s, metric)
                row[m] = None if v is None or base[metric] is None else round(v - base[metric], 4)
            w = _mean(table, "sae", t, s, "wer")
            row["wer_change_points"] = (None if w is None or base["wer"] is None
                                        else round(100 * (w - base["wer"]), 1))
            row["goals"] = goals(t, base[metric], _mean(table, "sae", t, s, metric), row)
            per[f"{s:g}"] = row
        out[t] = per
    return out


def gender_flips(rows: list[dict]) -> dict:
    """For gender: per method, target and strength, the share of items prompted with a voice of
    the other gender whose output the classifier puts on the target side (P(male) vs 0.5)."""
    out: dict = {}
    for r in rows:
        if r["target"] not in ("male", "female") or r["voice_gender"] == r["target"]:
            continue
        if r.get("p_male") is None:
            continue
        hit = (r["p_male"] > 0.5) == (r["target"] == "male")
        cell = out.setdefault(r["target"], {}).setdefault(r["method"], {}).setdefault(
            f"{r['strength']:g}", [0, 0])
        cell[0], cell[1] = cell[0] + hit, cell[1] + 1
    return {t: {m: {s: {"flipped": h, "of": n} for s, (h, n) in per.items()}
                for m, per in ms.items()} for t, ms in out.items()}


def goals(target: str, before: float | None, after: float | None, row: dict) -> dict:
    if before is None or after is None:
        return {}
    if target == "laughter":
        hit = before <= 0.05 and after >= 0.9
    elif target in ("male", "female"):
        hit = after >= 0.95 if target == "male" else after <= 0.05
    elif target in ("slow", "fast"):
        ratio = after / max(before, 1e-9)
        hit = ratio >= 2.5 if target == "slow" else ratio <= 0.65
    else:  # a concept of your own: its classifier hears the positive group, on average
        hit = after >= 0.5
    sae = row.get("sae") or 0.0
    controls_ok = all(row.get(c) is not None and abs(row[c]) < abs(sae) / 5 for c in CONTROLS)
    wer_ok = row.get("wer_change_points") is not None and row["wer_change_points"] <= 10
    return {"target_reached": bool(hit), "wer_rise_le_10": bool(wer_ok),
            "controls_below_fifth": bool(controls_ok)}


def write_csv(rows: list[dict], path: Path, fields: tuple[str, ...] = CSV_FIELDS) -> None:
    def save(p: Path) -> None:
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(sorted(rows, key=lambda r: (r["method"], r["target"], r["strength"],
                                                     r["item"])))
    atomic_save(path, save)


def dose_response(table: list[dict], concept: str, targets: list[str], path: Path) -> None:
    """Plotly HTML (JS included): target metric, WER and duration against strength."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = list(dict.fromkeys([primary(t) for t in targets] + ["wer", "voiced_duration_s"]))
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for col, metric in enumerate(metrics, 1):
        for method, target in sorted({(e["method"], e["target"]) for e in table[1:]}):
            es = [e for e in table if (e["method"], e["target"]) == (method, target)
                  and e[metric]["mean"] is not None]
            if not es:
                continue
            y = [e[metric]["mean"] for e in es]
            err = [e[metric]["ci95"][1] - e[metric]["mean"] for e in es]
            fig.add_trace(go.Scatter(
                x=[e["strength"] for e in es], y=y, name=f"{method}:{target}",
                legendgroup=f"{method}:{target}", showlegend=col == 1,
                mode="markers" if method == "prompt" else "lines+markers",
                error_y={"type": "data", "array": err}), row=1, col=col)
    fig.update_layout(title=f"Steering {concept}: dose response (mean ± 95% CI)",
                      xaxis_title="strength (units of the difference-of-means norm)")
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))


def console_summary(summary: dict) -> str:
    """One screen: per target and strength the SAE effect, baselines, controls, WER, goals."""
    lines = [f"steering {summary['concept']} at {summary['sae']['hook']} "
             f"({summary['n_items']} items) → {summary['out']}"]
    base = summary["results"][0]
    lines.append("unsteered: " + ", ".join(
        f"{k} {base[k]['mean']}" for k in _metrics(summary["results"])
        if base[k]["mean"] is not None))
    for t, per in summary["effects"].items():
        lines.append(f"{t}: latents {summary['sae']['by_target'][t]}")
        for s, row in per.items():
            deltas = " ".join(f"{m} {row[m]:+.3f}" for m in EFFECT_METHODS
                              if row.get(m) is not None)
            g = " ".join(k for k, v in row["goals"].items() if v)
            lines.append(f"  s={s}: Δ{row['metric']} {deltas}; ΔWER {row['wer_change_points']} "
                         f"pts; goals met: {g or 'none'}")
    for s, j in (summary.get("judge") or {}).items():
        lines.append(f"judge {s}: " + " ".join(f"{k} {v}" for k, v in j.items()))
    return "\n".join(lines)
