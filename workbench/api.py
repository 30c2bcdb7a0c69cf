"""The researcher's API: one object for a notebook, named the way TransformerLens and SAELens name
things.

    from workbench import Workbench
    wb = Workbench.load("tinycosy")                       # any `load_backbone` name or dir
    audio = wb.generate("The red lamp is here today.", "en-us+f2@p50")
    out, cache = wb.run_with_cache("Hello.", "en-us+f2@p50", hooks=["blocks.12.hook_resid_post"])
    sae = wb.sae(12)                                      # a sae_lens.SAE, checked against the model
    laugh = wb.steer("laughter", strength=4)              # the concept's SAE latents, clamped up
    wb.generate("The red lamp is here today.", "en-us+f2@p50", steer=laugh)
    wb.listen(audio)                                      # the instruments' readings

Every result displays itself in Jupyter: `Audio` as a player, `Readings` and `wb.voices` as
tables. Nothing here is new machinery: each call is the one the stage CLIs use.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from interp.audio import SAMPLE_RATE
from interp.hooks.capture import ActivationCache, GeneratedCapture, generate_with_cache
from interp.hooks.intervene import Intervention
from interp.models.backbone import Backbone, Request
from interp.models.generate import SamplingConfig
from interp.models.registry import load_backbone
from interp.paths import CONCEPTS_FILE, SAE_DIR
from steering.methods import EDITS, edit_interventions
from steering.select import TargetSelection, load_selection
from steering.steer import generate_steered, position_mask

STEER_METHODS = EDITS  # what can be edited (steering.methods)


@dataclass(frozen=True)
class Audio:
    """A waveform that plays itself in Jupyter; `np.asarray(audio)` gives the samples."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    label: str = ""

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.samples if dtype is None else self.samples.astype(dtype)

    def __len__(self) -> int:
        return len(self.samples)

    def save(self, path: str | Path) -> Path:
        import soundfile as sf

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, self.samples, self.sample_rate)
        return path

    def _repr_html_(self) -> str:
        from IPython.display import Audio as Player

        title = f"<div><b>{html.escape(self.label)}</b> · {self.seconds:.2f} s</div>"
        return title + Player(self.samples, rate=self.sample_rate)._repr_html_()

    def __repr__(self) -> str:
        return f"Audio({self.label!r}, {self.seconds:.2f} s at {self.sample_rate} Hz)"


class Readings(dict):
    """The listening instruments' readings of one clip; a table in Jupyter."""

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in self.items() if k != "notes" and not isinstance(v, list))
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.get("notes", []))
        return f"<table>{rows}</table>" + (f"<ul>{notes}</ul>" if notes else "")


@dataclass(frozen=True)
class Steer:
    """An edit to apply during generation: a method toward a target at a strength, at one hook.

    `strength` is in units of the concept's difference-of-means norm, so every additive method
    edits by the same norm at the same strength (`steering.select`)."""

    target: str
    selection: TargetSelection
    sae: object
    hook: str
    strength: float = 4.0
    method: str = "sae"
    positions: str = "speech"
    mode: str = "clamp"

    def interventions(self, modality: list[str]) -> list[Intervention]:
        """The edit for a request whose prefix has this modality (the experiments' builder)."""
        return edit_interventions(self.sae, self.hook, self.selection, self.method,
                                  self.strength, position_mask(self.positions, modality),
                                  self.mode)

    def __repr__(self) -> str:
        edited = (f"{len(self.selection.shift_latents)} latents shifted both ways"
                  if self.method == "sae_shift" else f"latents {self.selection.latents}")
        return f"Steer({self.method} → {self.target} ×{self.strength:g} at {self.hook}: {edited})"


@dataclass
class Workbench:
    """A backbone with its SAEs, steering edits and instruments, for a notebook."""

    backbone: Backbone
    sae_dirs: tuple[Path, ...] = ()
    _saes: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, model: str = "tinycosy", device: str = "cpu",
             sae_dirs: tuple[str | Path, ...] = ()) -> Workbench:
        """The backbone `model` (`load_backbone`: tinycosy, tinyedit, cosyvoice3:<dir>, …) and
        where its SAEs are: `sae_dirs`, then runs/<model>/sae, then (TinyCosy) the shipped one."""
        backbone = load_backbone(model, device)
        dirs = [Path(d) for d in sae_dirs] + [Path("runs") / backbone.name / "sae"]
        if backbone.spec == "tinycosy":
            dirs.append(SAE_DIR)
        return cls(backbone, tuple(dirs))

    def __repr__(self) -> str:
        return f"Workbench({self.backbone!r})"

    # -- the model --------------------------------------------------------------------------
    @property
    def hook_points(self) -> list[str]:
        return self.backbone.hook_points()

    @property
    def voices(self):
        """The prompt bank as a table (voice id, gender, accent, split, F0, prompt text)."""
        import pandas as pd

        cols = ("gender", "accent", "split", "f0_median", "text")
        return pd.DataFrame([{"voice": v, **{c: p.get(c) for c in cols}}
                             for v, p in sorted(self.backbone.voices.items())]).set_index("voice")

    def to_tokens(self, text: str, voice, instruction: str | None = None) -> Request:
        """Text ids, prompt speech tokens and the prefix's modality of one request."""
        return self.backbone.request(text, voice, instruction)

    def run_with_cache(self, text: str, voice, instruction: str | None = None,
                       hooks: list[str] | None = None, steer: Steer | None = None,
                       seed: int = 0) -> tuple[list[int], ActivationCache]:
        """Generate speech and keep the activations of `hooks` (default every resid_post) at
        every position: (speech tokens, cache of name → (1, T, d_model)). Position
        T_prefix + j is generated token j, heard at [j/25, (j+1)/25) s."""
        cap = self.capture(text, voice, instruction, hooks, steer, seed)
        return cap.tokens, cap.cache

    def capture(self, text: str, voice, instruction: str | None = None,
                hooks: list[str] | None = None, steer: Steer | None = None,
                seed: int = 0) -> GeneratedCapture:
        """`run_with_cache` with the modality and time of every position as well."""
        names = hooks or [h for h in self.hook_points if h.endswith("hook_resid_post")]
        for name in names:
            self.backbone.check_hook(name)
        req = self.to_tokens(text, voice, instruction)
        from interp.hooks.intervene import intervene

        ivs = steer.interventions(req.modality) if steer else []
        with intervene(self.backbone.model, ivs):
            return generate_with_cache(self.backbone, req.text_ids, req.prompt, req.n_text,
                                       names, SamplingConfig(seed=seed))

    # -- SAEs and steering ------------------------------------------------------------------
    def sae_dir(self, layer: int) -> Path:
        for root in self.sae_dirs:
            folder = root / f"layer_{layer}"
            if (folder / "cfg.json").exists():
                return folder
        looked = ", ".join(str(r / f"layer_{layer}") for r in self.sae_dirs)
        raise FileNotFoundError(f"no SAE for layer {layer} (looked in {looked}); train one with "
                                f"`python -m sae.train --model {self.backbone.spec} --layer "
                                f"{layer}`")

    def sae(self, layer: int = 12):
        """The layer's SAE (a `sae_lens.SAE`), checked to fit this model and hook."""
        from sae.io import load_sae

        if layer not in self._saes:
            self._saes[layer] = load_sae(self.sae_dir(layer), self.backbone,
                                         f"blocks.{layer}.hook_resid_post",
                                         device=self.backbone.device)
        return self._saes[layer]

    def steer(self, target: str, strength: float = 4.0, layer: int = 12, method: str = "sae",
              positions: str = "speech", selection: str | Path | None = None) -> Steer:
        """An edit toward `target` (laughter, male, female, slow, fast, or a concept of your
        own that `python -m steering.select --concept NAME --groups ...` added): the latents (or
        direction, per `method`) that `python -m steering.select` chose for it, read from
        `selection` or the SAE's `concepts.json`."""
        if method not in STEER_METHODS:
            raise ValueError(f"method {method!r}: choose from {STEER_METHODS}")
        path = Path(selection) if selection else self.sae_dir(layer) / CONCEPTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"no latent selection at {path}; make one with `python -m "
                                    f"steering.select --sae {self.sae_dir(layer)} --store ACTS "
                                    f"--corpus CORPUS --out {path}`")
        saved = json.loads(path.read_text())
        concepts = saved.get("concepts", saved)
        by_target = {t: s for c in concepts.values() for t, s in load_selection(c).items()}
        if target not in by_target:
            raise ValueError(f"no selection for {target!r} in {path}; it has {sorted(by_target)}")
        return Steer(target, by_target[target], self.sae(layer),
                     f"blocks.{layer}.hook_resid_post", strength, method, positions)

    # -- speech in, speech out --------------------------------------------------------------
    def generate(self, text: str, voice, instruction: str | None = None,
                 steer: Steer | list[Steer] | None = None, seed: int = 0,
                 sampling: SamplingConfig | None = None) -> Audio:
        """Speech of `text` in the voice of `voice` (a voice id of `wb.voices`, a wav path or a
        16 kHz waveform), optionally steered; seeded, so the unsteered and steered outputs
        differ only by the edit."""
        req = self.to_tokens(text, voice, instruction)
        steers = [steer] if isinstance(steer, Steer) else list(steer or [])
        ivs = [iv for s in steers for iv in s.interventions(req.modality)]
        tokens = generate_steered(self.backbone, req, ivs, seed, sampling)
        label = text if not steers else f"{text} [{', '.join(repr(s) for s in steers)}]"
        return Audio(self.backbone.render(tokens, voice), self.backbone.sample_rate, label)

    def listen(self, audio: Audio | np.ndarray, text: str | None = None) -> Readings:
        """What the listening instruments hear: P(male), laughter, transcript (and WER against
        `text`), voiced duration, pitch."""
        from interp.instruments import measure

        sr = audio.sample_rate if isinstance(audio, Audio) else SAMPLE_RATE
        return Readings(measure(np.asarray(audio, np.float32), sr, ref_text=text))
