"""The editing experiment's summaries (`steering.edit_compare`): per operation × method the
edit-done rate, the operation's own measure, WER, speaker kept and duration ratio with 95% CIs;
the same at every strength in a folder (a dose-response); metrics.csv; table.html; the console
table."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from interp.atomic import atomic_save
from interp.stats import mean_ci
from steering.edit_items import METHODS, row_strength

# each operation's own instrument reading (the edit measure of the table); a gender edit's is
# P(target gender), P(male) for a pair toward male and 1 − P(male) toward female
MEASURE = {"gender": "p_target_gender", "faster": "duration_ratio", "slower": "duration_ratio",
           "add_laughter": "laughter", "remove_laughter": "laughter"}
CSV_FIELDS = ("pair_id", "operation", "target", "method", "strength", "n_tokens", "seconds",
              "voiced", "f0", "p_male", "laughter", "wer", "done", "speaker_kept",
              "duration_ratio", "wav")


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


def console_table(r: dict) -> str:
    """The summary as the CLI prints it: the table, then the judge's controls."""
    widths = (16, 17, 8, 18, 36, 3, 5, 5, 5, 5)
    lines = [f"\nTinyEdit, {r['n_pairs']} held-out pairs ({r['measured_with']}):",
             "  " + " ".join(f"{h[:w]:{w}s}" for h, w in zip(TABLE_HEADER, widths, strict=True))]
    lines += ["  " + " ".join(f"{v:{w}s}" for v, w in zip(row, widths, strict=True))
              for row in table_cells(r["summary"], r["judge"])]
    for name in ("identity", "noise"):
        o = r["judge"].get(name, {}).get("overall")
        if o:
            lines.append(f"  judge control {name:9s} IFR {_f(o['IFR'], 0)}  CR {_f(o['CR'], 0)}"
                         f"  EMR {_f(o['EMR'], 0)}")
    return "\n".join(lines)
