"""The report's sections: each reads one stage's JSON under a run folder into rows and figures.

A row is (figure, the paper's value, ours, source file). The paper's values are those quoted in
DESIGN.md (CosyVoice3, arXiv 2606.10029); where the paper gives a plot and no number, "plot".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from interp.paths import REPO


@dataclass
class Row:
    figure: str
    paper: Any
    ours: Any
    source: str


@dataclass
class Section:
    title: str
    command: str  # what makes the files this section reads
    ran: bool = False
    rows: list[Row] = field(default_factory=list)
    figures: list[go.Figure] = field(default_factory=list)
    note: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)
    """(text, path relative to the run folder): pages the section points to"""

    def to_dict(self) -> dict:
        return {"title": self.title, "command": self.command, "ran": self.ran, "note": self.note,
                "rows": [r.__dict__ for r in self.rows],
                **({"links": [list(x) for x in self.links]} if self.links else {})}


def run_label(run: Path) -> str:
    """The run folder as a report names it: relative to the repository root (`runs/demo`), or
    by its folder name when it lies elsewhere; never an absolute path of this machine."""
    p = Path(run).resolve()
    return p.relative_to(REPO.resolve()).as_posix() if p.is_relative_to(REPO.resolve()) else p.name


def relative_source(source: str | Path, run: Path) -> str:
    """A figure's source file, relative to the repository root (`data/…`, `runs/demo/…`) or else
    to the run folder (`<run label>/…`); a path in neither keeps only its file name."""
    p, root, r = Path(source).resolve(), REPO.resolve(), Path(run).resolve()
    if p.is_relative_to(root):
        return p.relative_to(root).as_posix()
    if p.is_relative_to(r):
        return f"{run_label(run)}/{p.relative_to(r).as_posix()}"
    return p.name


def relative_text(text: str, run: Path) -> str:
    """`text` with every absolute path of the repository or the run folder made relative."""
    r, root = Path(run).resolve(), REPO.resolve()
    text = text.replace(f"{r}/", f"{run_label(run)}/").replace(str(r), run_label(run))
    return text.replace(f"{root}/", "").replace(str(root), ".")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def open_section(src: Path, title: str, command: str) -> tuple[Section, dict | None]:
    """A section that has run when its source file reads, with that file's content."""
    d = read_json(src)
    return Section(title, command, ran=d is not None), d


def get(d: Any, dotted: str) -> Any:
    """d["a"]["b"] for "a.b" (a key may itself hold dots, e.g. "span_iou0.5"); None when any step
    is missing."""
    parts = dotted.split(".")
    while parts:
        if not isinstance(d, dict):
            return None
        for n in range(len(parts), 0, -1):  # the longest key that exists
            key = ".".join(parts[:n])
            if key in d:
                d, parts = d[key], parts[n:]
                break
        else:
            return None
    return d


def _rows(sec: Section, data: dict, src: Path, spec: list[tuple[str, Any, str]]) -> None:
    for figure, paper, key in spec:
        sec.rows.append(Row(figure, paper, get(data, key), str(src)))


def codec_section(run: Path) -> Section:
    src = run / "codec_roundtrip" / "roundtrip.json"
    sec = Section("Speech codec round trip (held-out voices)",
                  "python -m interp.audio roundtrip --corpus runs/demo/corpus …")
    if (d := read_json(src)) is not None:
        sec.ran = True
        _rows(sec, d, src, [("median F0 ratio, male", None, "f0.male.median_ratio"),
                            ("median F0 ratio, female", None, "f0.female.median_ratio"),
                            ("duration ratio", None, "duration_ratio.mean"),
                            ("laughter AUROC after round trip", None,
                             "laughter_auroc.roundtrip"),
                            ("recogniser WER, original audio", None, "wer.original"),
                            ("recogniser WER, after round trip", None, "wer.roundtrip")])
    return sec


def tinycosy_section(run: Path) -> Section:
    src = run / "tinycosy" / "eval.json"
    sec = Section("TinyCosy: does it follow prompt, instruction and tags?",
                  "python -m interp.models.evaluate --corpus runs/demo/corpus --out …")
    if (d := read_json(src)) is not None:
        sec.ran = True
        _rows(sec, d, src, [("gender follows the prompt speaker", None, "gender_agreement"),
                            ("voiced duration slow / fast", None, "slow_over_fast"),
                            ("laughter probability with [laughter] tag", None,
                             "laughter_with_tag"),
                            ("laughter probability without tag", None, "laughter_without_tag"),
                            ("WER of generated speech", None, "wer"),
                            ("WER of the espeak reference", None, "wer_espeak_reference"),
                            ("WER of that reference after the codec round trip", None,
                             "wer_roundtrip_reference"),
                            ("words heard: the template's fixed words", None,
                             "word_recall.template"),
                            ("words heard: slot words (the content)", None, "word_recall.slot"),
                            ("nats/token gained by reading its own sentence", None,
                             "text_conditioning_nats.gain"),
                            ("best head's top sentence token on the spoken word", None,
                             "attention_alignment.best_head.on_word"),
                            ("the same by a uniform pick (chance)", None,
                             "attention_alignment.chance")])
    shipped = REPO / "data" / "tinycosy" / "eval.json"
    if (d := read_json(shipped)) is not None:
        _rows(sec, d, shipped, [("shipped eval (50 sentences): WER", None, "wer"),
                                ("shipped eval: laughter with tag", None, "laughter_with_tag"),
                                ("shipped eval: slot words heard", None, "word_recall.slot"),
                                ("shipped eval: WER change vs the previous checkpoint (paired)",
                                 None, "vs_baseline.wer_diff.mean")])
    return sec


def instruments_section(run: Path) -> Section:
    """The shipped listening instruments' held-out figures (every audio figure is read by them)."""
    sec = Section("Listening instruments on held-out voices (data/instruments/*/card.json)",
                  "python -m interp.instruments.train gender|laughter|asr")
    spec = {"gender": [("gender classifier accuracy (original / round trip)", "accuracy")],
            "laughter": [("laughter detector utterance accuracy", "utterance_accuracy"),
                         ("laughter span F1 (IoU ≥ 0.5)", "span_iou0.5.f1")],
            "asr": [("recogniser WER", "wer"),
                    ("recogniser WER, lexicon-constrained", "lexicon_corrected.wer")]}
    for name, rows in spec.items():
        src = REPO / "data" / "instruments" / name / "card.json"
        if (d := read_json(src)) is None:
            continue
        sec.ran = True
        for figure, key in rows:
            sec.rows.append(Row(figure, None, f"{get(d, f'heldout_voices.original.{key}')} / "
                                f"{get(d, f'heldout_voices.roundtrip.{key}')}", str(src)))
    return sec


def sweep_section(run: Path) -> Section:
    src = run / "sweep" / "sweep.json"
    sec, d = open_section(src, "SAE layer sweep (the paper's Figure 1)",
                          "python -m sae.sweep --layers 4,8,12,16,20 --store runs/demo/acts …")
    if d is None:
        return sec
    rows = d["layers"]
    layers = [r["layer"] for r in rows]
    for r in rows:
        sec.rows.append(Row(f"layer {r['layer']}: explained variance (text / speech)", "plot",
                            f"{r['explained_variance']:.3f} ({_f(r, 'explained_variance_text')}"
                            f" / {_f(r, 'explained_variance_speech')})", str(src)))
        sec.rows.append(Row(f"layer {r['layer']}: audio / mixed / text-modal latents", "plot",
                            f"{r['audio_frac']:.2f} / {r['mixed_frac']:.2f} / "
                            f"{r['text_frac']:.2f}", str(src)))
    fig = go.Figure()
    for key, name in (("explained_variance", "EV all"), ("explained_variance_text", "EV text"),
                      ("explained_variance_speech", "EV speech"),
                      ("loss_recovered", "loss recovered")):
        fig.add_scatter(x=layers, y=[r.get(key) for r in rows], name=name, mode="lines+markers")
    fig.update_layout(title="Explained variance and loss recovered per layer", height=350,
                      xaxis_title="layer")
    comp = go.Figure([go.Bar(x=layers, y=[r[f"{k}_frac"] for r in rows], name=k)
                      for k in ("audio", "mixed", "text", "inactive")])
    comp.update_layout(barmode="stack", title="Modality composition of latents per layer",
                       height=350, xaxis_title="layer", yaxis_title="fraction of latents")
    sec.figures += [fig, comp]
    return sec


def _f(r: dict, key: str) -> str:
    v = r.get(key)
    return "—" if v is None else f"{v:.3f}"


def sae_recipe(metrics: dict) -> str:
    """'k 32, 40k steps' from an SAE's metrics.json: its training block's steps, else its
    config's tokens / batch size; no count where it says neither."""
    cfg = metrics.get("config") or {}
    steps = (metrics.get("training") or {}).get("steps") or (
        cfg.get("tokens", 0) // cfg["batch_size"] if cfg.get("batch_size") else 0)
    return f"k {metrics.get('k', '?')}" + (f", {steps / 1000:g}k steps" if steps else "")


def sae_section(run: Path) -> Section:
    """The shipped SAE first (auto-interp and steering read it), then the run's own."""
    src = run / "sae" / "layer_12" / "metrics.json"
    sec = Section("Layer-12 SAE", "python -m sae.train --layer 12 --store runs/demo/acts …")
    shipped = REPO / "data" / "sae" / "layer_12" / "metrics.json"
    if (d := read_json(shipped)) is not None:
        recipe = sae_recipe(d)
        _rows(sec, d, shipped, [(f"shipped layer-12 SAE ({recipe}): explained variance", None,
                                 "explained_variance"),
                                ("shipped SAE: L0", "k=50 at d 896", "l0"),
                                ("shipped SAE: dead fraction", None, "dead_frac"),
                                ("shipped SAE: loss recovered", None, "loss_recovered")])
    if (d := read_json(src)) is not None:
        sec.ran = True
        _rows(sec, d, src, [("this run's layer-12 SAE: explained variance", None,
                             "explained_variance"),
                            ("this run's SAE: L0", None, "l0"),
                            ("this run's SAE: dead fraction", None, "dead_frac"),
                            ("this run's SAE: loss recovered", None, "loss_recovered"),
                            ("this run's SAE: pitfall check (inference L0 = training L0)", None,
                             "pitfall_check.ok")])
    return sec


def probes_section(run: Path) -> Section:
    src = run / "probes" / "probes.json"
    sec, d = open_section(
        src, "Concept probes on held-out voices (balanced accuracy; shuffled-label control)",
        "python -m sae.probes --store runs/demo/acts …")
    if d is None:
        return sec
    fig = go.Figure()
    for p in d["probes"]:
        sec.rows.append(Row(f"{p['concept']}, layer {p['layer']}, {p['features']}", "plot",
                            f"{p['balanced_accuracy']:.3f} (control "
                            f"{p['shuffled_balanced_accuracy']:.3f}, chance "
                            f"{p['chance_balanced_accuracy']:.3f})", str(src)))
    for concept in dict.fromkeys(p["concept"] for p in d["probes"]):
        for feats in ("raw", "sae"):
            ps = [p for p in d["probes"] if p["concept"] == concept and p["features"] == feats]
            if ps:
                fig.add_scatter(x=[p["layer"] for p in ps],
                                y=[p["balanced_accuracy"] for p in ps], name=f"{concept} {feats}",
                                mode="lines+markers" if feats == "raw" else "markers")
    fig.update_layout(title="Linear probes per layer (held-out voices)", height=350,
                      xaxis_title="layer", yaxis_title="balanced accuracy")
    sec.figures.append(fig)
    return sec


def autointerp_section(run: Path) -> Section:
    src = run / "autointerp" / "layer_12" / "summary.json"
    sec, d = open_section(
        src, "Auto-interp, layer 12: detection AUROC by modality and planted-concept recall",
        "python -m autointerp.run --layer 12 --store runs/demo/acts_heldout …")
    if d is None:
        return sec
    sec.note = (f"explainer {get(d, 'settings.explainer')}, scorer {get(d, 'settings.scorer')}, "
                f"SAE {get(d, 'settings.sae')}; latents: {d.get('modality_counts')}")
    paper = d.get("paper_auroc_cosyvoice3", {})
    for m in ("text", "audio", "mixed"):
        ident = ("" if get(d, f"identity_control.{m}.mean") is None
                 else f"; the token alone {_g(d, f'identity_control.{m}.mean')}")
        sec.rows.append(Row(f"{m}-modal detection AUROC (shuffled-label control)", paper.get(m),
                            f"{_g(d, f'auroc_by_modality.{m}.mean')} (control "
                            f"{_g(d, f'shuffled_control.{m}.mean')}{ident}, n "
                            f"{get(d, f'auroc_by_modality.{m}.n')})", str(src)))
    for m in ("text", "audio") if d.get("token_matched") else ():  # beyond the token
        sec.rows.append(Row(f"{m}-modal detection against silent occurrences of the same token "
                            "(the token alone: 0.5)", None,
                            f"{_g(d, f'token_matched.auroc.{m}.mean')} (shuffled "
                            f"{_g(d, f'token_matched.shuffled_control.{m}.mean')}; contextual "
                            f"latents {_g(d, f'token_matched.contextual_share.{m}')})", str(src)))
    _rows(sec, d, src, [
        ("planted-concept recall (share with a latent at AUROC ≥ 0.9), per position", None,
         "planted_recall.recall"),
        ("  random-latent control", None, "planted_recall.random_recall"),
        ("planted-concept recall, per utterance", None, "planted_recall.utterance_recall")])
    fig = go.Figure([go.Bar(x=["text", "audio", "mixed"], y=[paper.get(m) for m in
                                                            ("text", "audio", "mixed")],
                            name="paper (CosyVoice3)"),
                     go.Bar(x=["text", "audio", "mixed"],
                            y=[get(d, f"auroc_by_modality.{m}.mean") for m in
                               ("text", "audio", "mixed")], name="ours (TinyCosy)"),
                     go.Bar(x=["text", "audio", "mixed"],
                            y=[get(d, f"shuffled_control.{m}.mean") for m in
                               ("text", "audio", "mixed")], name="ours, shuffled labels"),
                     go.Bar(x=["text", "audio", "mixed"],
                            y=[get(d, f"identity_control.{m}.mean") for m in
                               ("text", "audio", "mixed")], name="ours, the token alone")])
    fig.update_layout(title="Detection AUROC by latent modality", height=350,
                      yaxis_range=[0, 1])
    concepts = get(d, "planted_recall.concepts") or []
    rec = go.Figure([go.Bar(x=[c["concept"] for c in concepts], y=[c["auroc"] for c in concepts],
                            name="best latent, per position"),
                     go.Bar(x=[c["concept"] for c in concepts],
                            y=[c.get("utterance_auroc") for c in concepts],
                            name="best latent, per utterance"),
                     go.Bar(x=[c["concept"] for c in concepts],
                            y=[c["random_auroc"] for c in concepts], name="random latent")])
    rec.update_layout(title="Planted concepts: best single latent's AUROC", height=380,
                      yaxis_range=[0, 1])
    sec.figures += [fig, rec]
    return sec


def _g(d: dict, key: str) -> str:
    v = get(d, key)
    return "—" if v is None else f"{v:.3f}"


def benchmark_section(run: Path) -> Section:
    src = REPO / "benchmarks" / "results.json"
    sec = Section("Benchmarks", "python -m benchmarks")
    if (d := read_json(src)) is not None:
        sec.ran = True
        sec.note = f"machine: {json.dumps(d.get('machine', {}))}"
        _rows(sec, d, src, [("capture overhead, layer 12 (goal ≤ 0.10)", None,
                             "capture.overhead_vs_bare.layer_12"),
                            ("capture overhead, all layers", None,
                             "capture.overhead_vs_bare.all_layers"),
                            ("SAE training tokens/s, ours / sparsify (goal ≥ 1)", None,
                             "sae_training.ours_vs_sparsify_tokens_per_s"),
                            ("SAE training FVU, ours − sparsify (goal ≤ 0)", None,
                             "sae_training.fvu_ours_minus_sparsify")])
    return sec
