"""The report's steering and judge sections, read from `<run>/steering/<concept>/summary.json`."""

from __future__ import annotations

from pathlib import Path

from plotly.subplots import make_subplots

from workbench.report.sections import Row, Section, read_json

CONCEPTS = ("laughter", "gender", "rate")
METRIC = {"laughter": "laughter", "gender": "p_male", "rate": "voiced_duration_s"}
# The paper's CosyVoice3 figures: (metric before, after) per steering target.
PAPER = {("laughter", "laughter"): "0.015 → 0.791", ("gender", "male"): "0.629 → 0.944",
         ("gender", "female"): "0.629 → 0.063", ("rate", "slow"): "3.96 s → 10.57 s",
         ("rate", "fast"): "3.96 s → 2.75 s"}
CONTROLS = ("random_latents", "random_direction")


def _mean(results: list[dict], method: str, target: str, strength: float, metric: str):
    for r in results:
        if (r["method"], r["target"], float(r["strength"])) == (method, target, strength):
            return (r.get(metric) or {}).get("mean")
    return None


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def steering_section(run: Path) -> Section:
    sec = Section("Steering through SAE latents (held-out sentences and voices)",
                  "python -m steering.run --concept laughter|gender|rate --layer 12 …")
    found = [(c, run / "steering" / c / "summary.json") for c in CONCEPTS]
    found = [(c, p, d) for c, p in found if (d := read_json(p)) is not None]
    if not found:
        return sec
    sec.ran = True
    fig = make_subplots(rows=1, cols=len(found), subplot_titles=[c for c, _, _ in found])
    for col, (concept, src, d) in enumerate(found, start=1):
        metric, res = METRIC[concept], d["results"]
        base = _mean(res, "none", "-", 0.0, metric)
        top = max(d["strengths"])
        for target in d["sae"]["by_target"]:
            sae = _mean(res, "sae", target, top, metric)
            others = ", ".join(f"{m} {_fmt(_mean(res, m, target, top, metric))}"
                               for m in ("decoder", "diffmeans", *CONTROLS))
            prompt = _mean(res, "prompt", target, 1.0, metric)
            wer0, wer1 = (_mean(res, "none", "-", 0.0, "wer"),
                          _mean(res, "sae", target, top, "wer"))
            sec.rows.append(Row(
                f"{concept} → {target}: {metric}, unsteered → SAE at strength {top:g}",
                PAPER.get((concept, target)),
                f"{_fmt(base)} → {_fmt(sae)}  (n {d['n_items']}; {others}; prompt "
                f"{_fmt(prompt)}; WER {_fmt(wer0)} → {_fmt(wer1)})", str(src)))
            for method in ("sae", "decoder", "diffmeans", *CONTROLS):
                xs = sorted({float(r["strength"]) for r in res if r["method"] == method
                             and r["target"] == target})
                fig.add_scatter(x=xs, y=[_mean(res, method, target, x, metric) for x in xs],
                                name=f"{concept}/{target}/{method}", mode="lines+markers",
                                row=1, col=col)
        fig.update_yaxes(title_text=metric, row=1, col=col)
    fig.update_xaxes(title_text="strength (× ‖difference of means‖)")
    fig.update_layout(title="Dose-response: SAE steering, baselines and controls", height=420)
    sec.figures.append(fig)
    return sec


def frontier_files(run: Path) -> list[Path]:
    """Every frontier.json of the run: `python -m steering.frontier`'s folders (frontier/<concept>)
    and steering.run folders a frontier was run in."""
    return sorted({*run.glob("frontier/*/frontier.json"), *run.glob("steering/*/frontier.json")})


def frontier_section(run: Path) -> Section:
    """Per concept, target and method: the best harmonic mean of concept success and content
    kept over strengths, with its 95% bootstrap CI, and a link to the frontier figure."""
    sec = Section("Concept–content frontier (best harmonic mean of concept success and 1 − WER "
                  "rise over strengths)",
                  "python -m steering.frontier --concept gender --n 50 …")
    for src in frontier_files(run):
        d = read_json(src)
        if not d:
            continue
        sec.ran = True
        concept = src.parent.name
        meta = read_json(src.parent / "frontier_summary.json") or {}
        for target, methods in d.items():
            for method, e in methods.items():
                best = next((p for p in e["points"] if p["strength"] == e["best_strength"]), {})
                ci = "" if not e.get("ci95") else f" [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]"
                sec.rows.append(Row(
                    f"{concept} → {target}: {method}", None,
                    f"{_fmt(e['score'])}{ci} at strength {e['best_strength']:g} (success "
                    f"{_fmt(best.get('concept_success'))}, WER rise {_fmt(best.get('wer_rise'))},"
                    f" voice kept {_fmt(best.get('voice_kept'))}, n {best.get('n')})", str(src)))
        # does an SAE method beat the difference of means: paired over the same items
        for target, diffs in (meta.get("paired") or {}).items():
            for name, p in diffs.items():
                ci = "" if not p.get("ci95") else f" [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]"
                sec.rows.append(Row(f"{concept} → {target}: {name} (paired)", None,
                                    f"{p['diff']:+.3f}{ci}",
                                    str(src.parent / "frontier_summary.json")))
        if (src.parent / "frontier.html").exists():
            sec.links.append((f"{concept}: frontier figure", (src.parent / "frontier.html")
                              .relative_to(run).as_posix()))
        if meta.get("wer_decode"):
            sec.note = (f"WER from the recogniser's {meta['wer_decode']} decode; strengths in "
                        f"{meta.get('strength_units', 'dmu')} units; 95% CI: items resampled.")
    return sec


def layers_section(run: Path) -> Section:
    """Per concept, target and method: the layer where its frontier score is best, with the score
    at every layer (`python -m steering.layers`'s layers/<concept>/layers.json)."""
    sec = Section("Where to steer: the frontier score at each layer",
                  "python -m steering.layers --concept gender --layers 4,8,12,16,20 …")
    for src in sorted(run.glob("layers/*/layers.json")):
        d = read_json(src)
        if not d:
            continue
        sec.ran = True
        for target, methods in d["table"].items():
            for method, by_layer in methods.items():
                best = by_layer["best"]
                at = ", ".join(f"L{k} {_fmt(e['score'])}" for k, e in by_layer.items()
                               if k != "best")
                sec.rows.append(Row(f"{d['concept']} → {target}: {method}", None,
                                    f"best at layer {best['layer']}: {_fmt(best['score'])} "
                                    f"({at}; n {d['n_items']})", str(src)))
        if (src.parent / "layers.html").exists():
            sec.links.append((f"{d['concept']}: score by layer", (src.parent / "layers.html")
                              .relative_to(run).as_posix()))
        sec.note = (f"Strengths in {d['strength_units']} units; each layer's frontier in "
                    "layers/<concept>/layer_L/.")
    return sec


def judge_section(run: Path) -> Section:
    sec = Section("MMAE rubric judge (acoustic backend) on the steering edits",
                  "python -m steering.run … --judge acoustic")
    for concept in CONCEPTS:
        src = run / "steering" / concept / "summary.json"
        d = read_json(src)
        if not d or not d.get("judge"):
            continue
        sec.ran = True
        for name, s in d["judge"].items():
            sec.rows.append(Row(f"{concept}: {name}", None, _rubric(s, s["n"]), str(src)))
    return sec


def _rubric(scores: dict, n: int) -> str:
    """The judge's IFR · CR · EMR (n) as the report shows it; a missing score is a dash."""
    def pct(v) -> str:
        return "—" if v is None else f"{v:.1f}"

    return f"IFR {pct(scores['IFR'])} · CR {pct(scores['CR'])} · EMR {pct(scores['EMR'])} (n {n})"


def _json_section(title: str, command: str, src: Path) -> tuple[Section, dict | None]:
    """A section fed by one JSON file, marked as run when the file is there."""
    sec = Section(title, command)
    d = read_json(src)
    sec.ran = d is not None
    return sec, d


def tinyedit_section(run: Path) -> Section:
    """TinyEdit's edits per operation and the judge beside Identity / Noise / espeak targets."""
    src = run / "tinyedit_edits" / "eval.json"
    sec, d = _json_section("TinyEdit: one edit per operation on held-out voices, judged",
                           "python -m interp.edit evaluate --pairs runs/demo/edit_pairs --n 1 …",
                           src)
    if d is None:
        return sec
    for op, m in d["by_operation"].items():
        t = m["tinyedit"]
        sec.rows.append(Row(f"{op} ({m['mmae_operation']}): edit done / speaker kept / WER", None,
                            f"{_fmt(t['edit_done'])} / {_fmt(t['speaker_kept'])} / "
                            f"{_fmt(t['wer'])} (n {m['n']})", str(src)))
    _judge_rows(sec, d.get("mmae_acoustic_judge", {}), src)
    return sec


def _judge_rows(sec: Section, judged: dict, src: Path) -> None:
    """One row per judged prediction set: overall IFR · CR · EMR."""
    for name, j in judged.items():
        sec.rows.append(Row(f"judge: {name}", None, _rubric(j["overall"], j["n"]), str(src)))


def edit_steering_section(run: Path) -> Section:
    """TinyEdit steered through SAE latents vs asked by instruction (steering.edit_compare)."""
    src = run / "tinyedit_steer" / "summary.json"
    sec, d = _json_section("TinyEdit: steering through SAE latents vs asking by instruction",
                           "python -m steering.edit_compare --pairs runs/demo/edit_pairs --n 1 …",
                           src)
    if d is None:
        return sec
    for op, by_method in d["summary"].items():
        done = " · ".join(f"{m} {_fmt(s['edit_done']['mean'])}" for m, s in by_method.items())
        n = max(s["edit_done"]["n"] for s in by_method.values())
        sec.rows.append(Row(f"{op}: edit done by method", None, f"{done} (n {n})", str(src)))
    _judge_rows(sec, d.get("judge", {}), src)
    return sec
