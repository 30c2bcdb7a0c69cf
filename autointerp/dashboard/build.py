"""Build the static feature-dashboard site from auto-interp layer folders (and steering runs).

Site layout (`runs/<model>/dashboard/`; everything the browser needs, no CDN):
    index.html, static/{app.js,latent.js,style.css,plotly.min.js}
    data/site.json                          layers, their summary cards (human names) and counts
    data/layer_L/index.json                 one column per field, one entry per latent (compact)
    data/layer_L/latents/latent_XXXXX.json  a latent's row, evidence (with its output side: what
                                            it does to the sound), waveform envelopes, steering
    data/layer_L/clips/*.wav                the clips (and output renderings), copied from the
                                            auto-interp folder
The site is written to a staging folder and swapped in whole, so a failed build keeps the old one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from autointerp.dashboard import inputs
from interp.atomic import atomic_write_text

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    layer: int = 12
    """layer to show (ignored when --layers is given)"""
    layers: str = ""
    """comma-separated layers for one site with a layer switch, e.g. 12,6"""
    autointerp: str = "runs/tinycosy/autointerp"
    """auto-interp root holding layer_L/ folders (from `python -m autointerp.run`)"""
    steering: str = ""
    """steering root holding <concept>/summary.json; empty means steering/ beside --autointerp"""
    out: str = ""
    """site folder; empty means dashboard/ beside --autointerp"""
    envelope_bins: int = 200
    """points of the waveform envelope drawn under each clip"""

    def layer_list(self) -> list[int]:
        if not self.layers.strip():
            return [self.layer]
        try:
            return [int(x) for x in self.layers.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"--layers {self.layers!r}: expected integers like 12,6") from None

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.autointerp).parent / "dashboard"

    def steering_dir(self) -> Path:
        return Path(self.steering) if self.steering else Path(self.autointerp).parent / "steering"


def _r(x: float | None) -> float | None:
    """Four significant digits: plenty for a display, and it keeps 16k-latent indexes small."""
    return None if x is None else float(f"{x:.4g}")


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def envelope(wav: Path, bins: int) -> dict:
    """Min/max of the waveform in `bins` equal slices, and the clip's duration in seconds."""
    audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    x = audio.mean(axis=1)
    duration = len(x) / sr
    n = max(1, min(bins, len(x)))
    x = x[: len(x) // n * n].reshape(n, -1) if len(x) else np.zeros((1, 1), np.float32)
    return {"duration": round(duration, 4), "dt": round(duration / n, 6),
            "lo": [round(float(v), 3) for v in x.min(axis=1)],
            "hi": [round(float(v), 3) for v in x.max(axis=1)]}


class ClipCopier:
    """Copies each referenced clip once into the site and remembers its envelope."""

    def __init__(self, src: Path, dst: Path, layer: int, bins: int):
        self.src, self.dst, self.layer, self.bins = src, dst, layer, bins
        self.done: dict[str, tuple[str, dict]] = {}

    def __call__(self, rel: str) -> tuple[str, dict]:
        if rel not in self.done:
            path = inputs.inside(self.src, rel, "clip path", self.layer)
            if not path.is_file():
                raise FileNotFoundError(f"clip {path} is missing: {inputs.rerun_hint(self.layer)}")
            parts = path.relative_to(self.src.resolve()).parts
            site_rel = "clips/" + "__".join(parts[1:] if parts[0] == "clips" else parts)
            target = self.dst / site_rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:  # a hard link is a real file of the site, without a second copy on disk
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            try:
                env = envelope(path, self.bins)
            except (RuntimeError, sf.LibsndfileError) as exc:
                raise ValueError(f"clip {path} is unreadable ({exc}): "
                                 f"{inputs.rerun_hint(self.layer)}") from None
            self.done[rel] = (site_rel, env)
        return self.done[rel]


def _example(ex: dict, clips: ClipCopier) -> dict:
    out = {"utt_id": str(ex.get("utt_id", "")), "src_utt_id": str(ex.get("src_utt_id", "")),
           "position": ex.get("position"), "modality": ex.get("modality"),
           "act": _r(inputs.num(ex.get("act"))), "text": None, "clip": None}
    text = ex.get("text")
    if isinstance(text, dict) and isinstance(text.get("tokens"), list):
        out["text"] = {"tokens": [str(t) for t in text["tokens"]],
                       "acts": [_r(inputs.num(a)) or 0.0 for a in text.get("acts") or []],
                       "center": text.get("center")}
    clip = ex.get("clip")
    if isinstance(clip, dict):  # a clip without a wav (beyond --n-clips) still has its trace
        site_rel, env = clips(clip["wav"]) if isinstance(clip.get("wav"), str) else (None, None)
        t0, t1 = inputs.num(clip.get("t0")) or 0.0, inputs.num(clip.get("t1"))
        duration = env["duration"] if env else (t1 - t0 if t1 is not None and t1 > t0 else 1.0)
        trace = [(inputs.num(p[0]), inputs.num(p[1])) for p in clip.get("trace") or []
                 if isinstance(p, (list, tuple)) and len(p) == 2]
        trace = [(t, a) for t, a in trace if t is not None and a is not None]
        # trace times may be absolute (utterance) or clip-relative: make them clip-relative
        shift = t0 if trace and max(t for t, _ in trace) > duration + 1e-6 else 0.0
        out["clip"] = {"wav": site_rel, "t0": t0, "t1": t1, "duration": round(duration, 4),
                       "trace": [[round(t - shift, 4), _r(a)] for t, a in trace], "env": env}
    return out


def _output_side(side, clips: ClipCopier) -> dict | None:
    """What the latent does to the sound: its sentence, the two weighted code profiles and their
    differences, and the rendered promoted / suppressed codes (copied like clips)."""
    if not isinstance(side, dict) or not isinstance(side.get("text"), str):
        return None

    def figures(d) -> dict:
        return {str(k): _r(inputs.num(v)) for k, v in d.items()} if isinstance(d, dict) else {}

    wav = side.get("wav") if isinstance(side.get("wav"), dict) else {}
    return {"text": side["text"], "promoted": figures(side.get("promoted_profile")),
            "suppressed": figures(side.get("suppressed_profile")),
            "deltas": figures(side.get("deltas")),
            "wav": {k: clips(v)[0] for k, v in wav.items()
                    if k in ("promoted", "suppressed") and isinstance(v, str)}}


def _intervention(iv) -> dict | None:
    """The latent steered alone (`autointerp.intervention`): its sentence and mean changes."""
    if not isinstance(iv, dict) or not isinstance(iv.get("text"), str):
        return None
    deltas = iv.get("deltas") if isinstance(iv.get("deltas"), dict) else {}
    return {"text": iv["text"], "deltas": {str(k): _r(inputs.num(v)) for k, v in deltas.items()}}


def _evidence(ev: dict | None, clips: ClipCopier) -> dict | None:
    if ev is None:
        return None
    hist = ev.get("histogram") if isinstance(ev.get("histogram"), dict) else {}
    lens = ev.get("logit_lens") if isinstance(ev.get("logit_lens"), dict) else {}

    def pairs(key: str) -> list:
        return [[str(p[0]), _r(inputs.num(p[1]))] for p in lens.get(key) or []
                if isinstance(p, (list, tuple)) and len(p) == 2]

    out = {"histogram": {"edges": [_r(inputs.num(e)) for e in hist.get("edges") or []],
                         "counts": [inputs.num(c) or 0 for c in hist.get("counts") or []]},
           "logit_lens": {"promoted": pairs("promoted"), "suppressed": pairs("suppressed")},
           "output_side": _output_side(ev.get("output_side"), clips),
           "intervention": _intervention(ev.get("intervention"))}
    for group in inputs.EXAMPLE_GROUPS:
        out[group] = [_example(e, clips) for e in ev[group]]
    return out


def build_layer(src: Path, layer: int, dst: Path, steering: list[dict], bins: int) -> dict:
    """Write one layer's index, latent pages' data and clips; return its entry of site.json."""
    rows = inputs.read_latents(src, layer)
    (dst / "latents").mkdir(parents=True)
    clips = ClipCopier(src, dst, layer, bins)
    runs_by_latent: dict[int, list[dict]] = {}
    for run in steering:
        if run["layer"] == layer:
            for lat in run["latents"]:
                targets = [t for t, lats in run["by_target"].items() if lat in lats]
                runs_by_latent.setdefault(lat, []).append(
                    {"concept": run["concept"], "targets": targets, "metrics": run["metrics"]})
    cols: dict[str, list] = {k: [] for k in ("latent", "density", "max_act", "auroc", "speech_frac",
                                             "modality", "label")}
    for row in rows:
        ev = _evidence(inputs.read_evidence(src, row, layer), clips)
        page = {**row, "layer": layer, "evidence": ev,
                "steering": runs_by_latent.get(row["latent"], [])}
        (dst / "latents" / f"latent_{row['latent']:05d}.json").write_text(dumps(page))
        for key in ("latent", "label"):
            cols[key].append(row[key])
        for key in ("density", "max_act", "speech_frac"):
            cols[key].append(_r(row[key]))
        cols["auroc"].append(_r(row["scores"]["auroc"]))
        cols["modality"].append(inputs.MODALITIES.index(row["modality"]))
    (dst / "index.json").write_text(dumps({"layer": layer, "modalities": inputs.MODALITIES,
                                           "columns": cols}))
    counts = {m: cols["modality"].count(i) for i, m in enumerate(inputs.MODALITIES)}
    log.info("layer %d: %d latents, %d clips", layer, len(rows), len(clips.done))
    return {"layer": layer, "n": len(rows), "counts": counts, "clips": len(clips.done),
            "cards": inputs.summary_cards(src, len(rows), counts)}


def _copy_static(site: Path) -> None:
    import plotly

    (site / "static").mkdir(parents=True)
    for f in STATIC.iterdir():
        if f.suffix in (".js", ".css"):
            shutil.copyfile(f, site / "static" / f.name)
    shutil.copyfile(STATIC / "index.html", site / "index.html")
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not plotly_js.exists():
        raise FileNotFoundError(f"{plotly_js} is missing: reinstall plotly (pip install plotly)")
    shutil.copyfile(plotly_js, site / "static" / "plotly.min.js")


def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` by `staging` with two renames (the old site is removed afterwards)."""
    old = None
    if out.exists():
        if not (out / "data" / "site.json").exists() and any(out.iterdir()):
            raise ValueError(f"{out} exists and is not a dashboard site: choose another --out")
        old = out.with_name(out.name + f".old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_site(cfg: BuildConfig) -> Path:
    """Build the whole site; return its folder."""
    root, out = Path(cfg.autointerp), cfg.out_dir()
    layers = cfg.layer_list()
    if not layers:
        raise ValueError("no layer given: pass --layer 12 or --layers 12,6")
    for layer in layers:  # fail before any work when a layer was never run
        if not (inputs.layer_dir(root, layer) / "latents.jsonl").exists():
            raise FileNotFoundError(f"no auto-interp output for layer {layer} in {root}: "
                                    f"{inputs.rerun_hint(layer)}")
    steering = list(inputs.read_steering(cfg.steering_dir()))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-build-", dir=out.parent))
    try:
        _copy_static(staging)
        entries = [build_layer(inputs.layer_dir(root, layer), layer,
                               staging / "data" / f"layer_{layer}", steering, cfg.envelope_bins)
                   for layer in layers]
        site = {"title": f"{root.resolve().parent.name} feature dashboard", "layers": entries,
                "built": time.strftime("%Y-%m-%d %H:%M:%S"),
                # relative to the site: the page names no absolute path of this machine
                "autointerp": os.path.relpath(root.resolve(), out.resolve()),
                "steering_runs": len(steering)}
        atomic_write_text(staging / "data" / "site.json", dumps(site))
        staging.chmod(0o755)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
