"""`python -m steering.run --concept laughter|gender|rate --layer 12 --strength 0,2,4,8 [--n 50]`

Steers a backbone (TinyCosy by default, `--model`) through SAE latents at one layer while it speaks held-out sentences in held-out
voices (fixed seeds), beside the baselines (the latents' decoder direction added to the raw
residual, the difference of means, the model's own prompt: `[laughter]` tag, slow/fast
instruction, a prompt voice of the target gender) and the controls (random latents of similar
density, a random direction of the same norm). Strength is in units of ‖μ_A − μ_B‖, the norm of
the difference of means, so every additive method makes edits of the same norm. Writes under
`--out` (default runs/tinycosy/steering/<concept>/): wavs, rows.jsonl, metrics.csv,
summary.json, dose_response.html, MMAE sets (mmae/) and, with `--judge`, judge scores.
A killed run resumes where it stopped. From a notebook: `run_steering(SteeringConfig(...))`.

A concept of your own comes from the corpus's columns or tags (interp.concepts):

    python -m steering.run --concept whisper --groups style=whisper style=default \
        --concept-instruction "Please whisper." --concept-rubric "Is <audio output> whispered?"

Its latents are selected from the two groups, its prompt baseline asks the instruction (none
without one), and its success is measured by `p_concept`: P(positive group) of each output from a
logistic regression on log-mel statistics fitted on the groups' train-split utterances and scored
on the held-out ones (interp.instruments.concept; `classifier.json`, and its held-out accuracy in
summary.json's `success_measure`), beside the shipped instruments' readings.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from interp.atomic import atomic_write_json
from interp.cli import add_config_args, config_from_args, run_cli
from interp.concepts import PRESETS, Concept, CorpusGroups, resolve
from interp.corpus.table import load_table
from interp.device import pick_device
from interp.instruments.common import use_instruments
from interp.instruments.concept import ConceptClassifier, fit_classifier
from interp.judge.mmae_sets import judge_sets, write_sets
from interp.models.backbone import Backbone
from interp.models.registry import load_backbone
from interp.paths import CONCEPTS_FILE, default_sae
from interp.store.reader import ActivationStore
from sae.io import load_sae, weights_fingerprint
from steering.calibrate import CalibrationConfig, calibrate, calibration_items
from steering.experiment import (
    CONCEPT_METRIC,
    DEFAULT_METHODS,
    METHODS,
    METRICS,
    TTS_METHODS,
    Steerer,
    TTSItem,
    plan_items,
    plan_units,
    run_units,
    uses_clamp,
    uses_edit,
)
from steering.report import (
    CONCEPT_CSV_FIELDS,
    console_summary,
    dose_response,
    effects,
    gender_flips,
    results_table,
    write_csv,
)
from steering.select import (
    SHIFT_K,
    TargetSelection,
    default_k,
    floor_of,
    group_stats,
    load_selection,
    save_selection,
    select_concept,
    shift_of,
)
from steering.steer import MODES, POSITIONS
from steering.targeted import TargetedConfig, fit_targeted

log = logging.getLogger(__name__)

SELECTION = "selection.json"
CLASSIFIER = "classifier.json"  # a concept of your own's success classifier


@dataclass(frozen=True)
class SteerSetup:
    """What every steering experiment on a TTS backbone shares: the concept, the SAE edit, the
    held-out items, the backbone and the files (`SteeringConfig`, `steering.frontier`)."""

    concept: str = "laughter"
    """laughter | gender | rate, or the name of a concept of your own (with --groups)"""
    groups: tuple[str, ...] = ()
    """a concept of your own from the corpus: its positive group and optionally its negative one
    (default: the rest), each COLUMN=VALUE, COLUMN!=VALUE, tag=NAME, tag!=NAME or tag=none,
    several joined by commas (e.g. style=whisper style=default; interp.concepts)"""
    concept_instruction: str = ""
    """a concept of your own: the instruction of the prompt baseline (the model asked its own
    way, e.g. "Please whisper.") and of the judge's samples; without it there is no prompt
    baseline"""
    concept_rubric: str = ""
    """a concept of your own: the judge's question, answered Yes when reached (e.g. "Is <audio
    output> whispered?")"""
    classifier_utts: int = 200
    """a concept of your own: utterances per group (and split) the success classifier is fitted
    and scored on (interp.instruments.concept)"""
    layer: int = 12
    """layer whose resid_post is edited (the SAE must be trained there)"""
    n: int = 50
    """held-out sentences (each with a held-out voice)"""
    k: int = 0
    """latents steered per target (0: the concept's default, 16 for gender, 8 otherwise)"""
    mode: str = "clamp"
    """SAE edit: clamp (z ← max(z, s·c)), add, scale or set"""
    positions: str = "speech"
    """edited positions: speech (prompt + generated), generated, window, boundary (a window
    opened at the word boundary where the prompt baseline's tag sits), or all"""
    from_step: int = 10
    """positions=window: first generated step edited (boundary: where none is found)"""
    steps: int = 12
    """positions=window or boundary: generated steps edited (25 steps = 1 s)"""
    lead_words: int = 0
    """positions=boundary: open the window this many words before the tag's boundary (the model
    finishes the word it is saying before an edited laugh comes out)"""
    select: str = "contrastive"
    """latent selection: contrastive, or label (autointerp labels, ranked contrastively)"""
    model: str = "tinycosy"
    """backbone (`interp.models.registry.load_backbone`: tinycosy, cosyvoice3:<dir>, a model
    dir); it must render waveforms, which the instruments listen to"""
    sae: str = ""
    """SAE folder (default runs/tinycosy/sae/layer_<layer>, else the shipped data/sae one)"""
    store: str = "runs/tinycosy/acts"
    """activation store for contrastive selection"""
    corpus: str = "runs/tinycosy/corpus"
    """corpus: ground-truth groups and held-out sentences"""
    autointerp: str = ""
    """autointerp latents.jsonl (default runs/tinycosy/autointerp/layer_<layer>/latents.jsonl)"""
    max_positions: int = 100_000
    """positions per group read for selection"""
    out: str = ""
    """output folder (default runs/tinycosy/steering/<concept>)"""
    seed: int = 0
    """selection and sampling seed"""
    threads: int = 1
    """torch threads"""
    device: str = "cpu"
    """where the backbone generates: cpu, cuda or auto; the SAE and its edits follow it (the
    instruments listen on the CPU)"""
    batch_size: int = 8
    """outputs generated together in one KV-cached batch (1: one at a time); every output is the
    same at any batch size"""
    instruments: str = ""
    """swap the listening instruments every output is measured with: asr=DIR,gender=DIR,
    laughter=DIR,speaker=DIR (local folders; a Whisper checkpoint for asr, transformers audio
    classifiers whose labels name 'male' for gender or 'laugh' for laughter, an x-vector or
    audio encoder for the frontier's voice_kept; docs/instruments.md)"""
    shift_k: int = SHIFT_K
    """sae_shift: latents shifted toward the target group's mean codes, of either sign (the top
    by contrastive score)"""
    calibrate_candidates: int = 24
    """sae_effect: top contrastive latents steered alone to measure their effect
    (steering.calibrate)"""
    calibrate_items: int = 12
    """sae_effect: calibration items (held-out sentences after the experiment's --n)"""
    calibrate_strength: float = 4.0
    """sae_effect: each candidate's edit, in units of ‖Δμ‖"""

    ts_candidates: int = 24
    """sae_ts: decoder directions of the top contrastive latents among the probe vectors
    (steering.targeted)"""
    ts_random: int = 16
    """sae_ts: random directions among the probe vectors"""
    ts_items: int = 8
    """sae_ts: calibration items per target (held-out sentences after the experiment's --n)"""
    ts_strength: float = 4.0
    """sae_ts: each probe's norm, in units of ‖Δμ‖"""

    def targeted(self) -> TargetedConfig:
        return TargetedConfig(self.ts_candidates, self.ts_random, self.ts_items,
                              self.ts_strength, seed=self.seed)

    def calibration(self) -> CalibrationConfig:
        return CalibrationConfig(self.calibrate_candidates, self.calibrate_items,
                                 self.calibrate_strength)

    def definition(self) -> Concept:
        """The concept: a preset, one of your own (`--groups`), or one of your own that
        `python -m steering.select --concept NAME --groups ...` saved in the SAE's
        concepts.json (its groups, instruction and rubric)."""
        if not self.groups and self.concept not in PRESETS:
            saved = Path(self.paths()[1]) / CONCEPTS_FILE
            defs = json.loads(saved.read_text()).get("definitions", {}) if saved.exists() else {}
            if self.concept in defs:
                if self.concept_instruction or self.concept_rubric:
                    raise ValueError(f"{self.concept!r} is defined in {saved}; give --groups to "
                                     "define it anew with another instruction or rubric")
                return Concept.from_dict(defs[self.concept])
        return resolve(self.concept, self.groups, self.concept_instruction, self.concept_rubric)

    def validate(self) -> None:
        self.definition()
        for name, val, ok in (("mode", self.mode, MODES), ("positions", self.positions, POSITIONS),
                              ("select", self.select, ("contrastive", "label"))):
            if val not in ok:
                raise ValueError(f"--{name} {val!r}: choose from {ok}")
        if self.n < 1:
            raise ValueError("--n must be at least 1")
        if self.k < 0:
            raise ValueError("--k must be at least 1 (or 0 for the concept's default)")
        if self.classifier_utts < 1:
            raise ValueError("--classifier-utts must be at least 1")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.lead_words < 0:
            raise ValueError("--lead-words must be at least 0")
        if self.shift_k < 1:
            raise ValueError("--shift-k must be at least 1")
        self.calibration().validate()

    def resolved(self) -> SteerSetup:
        """This config with the concept's default k filled in (what summary.json records)."""
        return replace(self, k=self.k or default_k(self.concept))

    def default_out(self) -> str:
        return f"runs/tinycosy/steering/{self.concept}"

    def paths(self) -> tuple[Path, Path, Path]:
        """(out, sae, autointerp latents.jsonl) with the defaults filled in."""
        return (Path(self.out or self.default_out()),
                Path(self.sae) if self.sae else default_sae(self.layer),
                Path(self.autointerp
                     or f"runs/tinycosy/autointerp/layer_{self.layer}/latents.jsonl"))

    def prompt_methods(self, methods: tuple[str, ...]) -> tuple[str, ...]:
        """`methods` less the prompt baseline where the concept has no way to be asked."""
        concept = self.definition()
        if "prompt" in methods and not all(t.ask for t in concept.targets):
            log.warning("%s has no instruction (--concept-instruction): no prompt baseline",
                        concept.name)
            return tuple(m for m in methods if m != "prompt")
        return methods


@dataclass(frozen=True)
class SteeringConfig(SteerSetup):
    """One steering experiment."""

    strength: str = "0,2,4,8"
    """comma-separated strengths, in units of the difference-of-means norm"""
    methods: str = ",".join(DEFAULT_METHODS)
    """comma-separated methods to run (sae, baselines, controls; also sae_keepnorm and
    diffmeans_keepnorm, the norm-preserving variants)"""
    judge: str = "none"
    """also judge the MMAE sets: none, acoustic, or api"""
    judge_methods: str = "sae"
    """comma-separated edit methods whose outputs are written as MMAE sets and judged (each
    among --methods; sets of a method other than sae are named <method>/<target>_s<strength>)"""
    judge_url: str = ""
    """OpenAI-compatible base URL for --judge api"""
    judge_model: str = ""
    """model name for --judge api"""

    def strengths(self) -> list[float]:
        try:
            vals = [float(s) for s in self.strength.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--strength {self.strength!r}: give numbers like 0,2,4,8") from None
        if not vals or any(v < 0 for v in vals):
            raise ValueError(f"--strength {self.strength!r}: give non-negative numbers")
        return sorted(set(vals))

    def method_list(self) -> tuple[str, ...]:
        ms = tuple(m.strip() for m in self.methods.split(",") if m.strip())
        bad = [m for m in ms if m not in METHODS]
        if bad or "sae" not in ms:
            raise ValueError(f"--methods {self.methods!r}: include sae, choose from {METHODS}")
        return ms

    def validate(self) -> None:
        super().validate()
        self.strengths()
        self.method_list()
        if self.judge not in ("none", "acoustic", "api"):
            raise ValueError(f"--judge {self.judge!r}: choose from ('none', 'acoustic', 'api')")
        self.judged_methods()

    def judged_methods(self) -> tuple[str, ...]:
        ms = tuple(dict.fromkeys(m.strip() for m in self.judge_methods.split(",") if m.strip()))
        ok = [m for m in self.method_list() if not TTS_METHODS[m].strength_free]
        if not ms or any(m not in ok for m in ms):
            raise ValueError(f"--judge-methods {self.judge_methods!r}: choose edit methods among "
                             f"--methods: {ok}")
        return ms


@dataclass
class Setup:
    """An experiment made ready: the backbone, the SAE, the selected latents, a concept of your
    own's classifier, the steerer and the held-out items."""

    concept: Concept
    engine: Backbone
    sae: object
    hook: str
    out: Path
    sae_dir: Path
    selection: dict[str, TargetSelection]
    classifier: ConceptClassifier | None
    steerer: Steerer
    items: list[TTSItem]


def prepare(cfg: SteerSetup) -> Setup:
    """Load the backbone and the SAE, select the latents (or reuse the folder's selection), fit
    a concept of your own's classifier, and plan the held-out items (`cfg` validated and
    resolved)."""
    concept = cfg.definition()
    if not concept.preset:  # unknown columns and empty groups fail before anything loads
        CorpusGroups(concept, load_table(cfg.corpus), cfg.corpus)
    use_instruments(cfg.instruments)
    torch.set_num_threads(cfg.threads)
    out, sae_dir, labels = cfg.paths()
    hook = f"blocks.{cfg.layer}.hook_resid_post"
    engine = load_backbone(cfg.model, pick_device(cfg.device))
    if why := engine.render_missing():
        raise ValueError(f"cannot steer {cfg.model} here: its outputs must be rendered to be "
                         f"measured (no token-only figures). {why}")
    sae = load_sae(sae_dir, engine, hook, device=engine.device)
    out.mkdir(parents=True, exist_ok=True)
    selection = target_selection(cfg, sae, out, labels, concept)
    classifier = None if concept.preset else concept_classifier(cfg, concept, out)
    steerer = Steerer(engine, sae, hook, selection, cfg.mode, cfg.positions,
                      (cfg.from_step, cfg.steps), cfg.seed, lead_words=cfg.lead_words)
    items = plan_items(engine, cfg.corpus, cfg.n, cfg.seed,
                       None if concept.preset else concept, classifier)
    return Setup(concept, engine, sae, hook, out, sae_dir, selection, classifier, steerer, items)


def with_calibration(setup: Setup, cfg: SteerSetup, methods: tuple[str, ...]) -> Setup:
    """The setup with what calibrated methods need, when `methods` names them: every target's
    `sae_effect` latents (steering.calibrate) and `sae_ts` vector (steering.targeted); as it
    was otherwise."""
    selection = setup.selection
    stats = None

    def read_stats() -> dict:
        nonlocal stats
        if stats is None:  # the same group statistics the folder's selection was made from
            stats = group_stats(setup.sae, ActivationStore(cfg.store, cfg.layer), cfg.corpus,
                                setup.concept, cfg.max_positions, cfg.seed)
        return stats

    if uses_clamp(methods) and any(s.floor is None for s in selection.values()):
        # a folder selected before the clamp existed: its floors
        selection = {t: replace(s, floor=floor_of(read_stats(), t, setup.concept))
                     for t, s in selection.items()}
    if uses_edit(methods, "sae_shift"):
        other = sorted({s.shift_k for s in selection.values() if s.shift_k not in (0, cfg.shift_k)})
        if other:  # its rows are keyed by method and strength, not by how many latents
            raise ValueError(f"{setup.out} holds sae_shift edits of {other[0]} latents, not "
                             f"--shift-k {cfg.shift_k}; use --out for another count")
        if any(not s.shift_k for s in selection.values()):
            # a folder selected before sae_shift: its latents, written back to the folder so a
            # later run with another --shift-k is refused rather than resumed
            selection = {t: s if s.shift_k else replace(s, **shift_of(
                setup.sae, read_stats(), t, setup.concept, cfg.shift_k))
                for t, s in selection.items()}
            path = setup.out / SELECTION
            atomic_write_json(path, {**json.loads(path.read_text()),
                                     "targets": save_selection(selection)})
    if uses_edit(methods, "sae_effect"):
        cal = cfg.calibration()
        items = calibration_items(setup.steerer, cfg.corpus, cfg.n, cal, cfg.seed, setup.items)
        selection = calibrate(setup.steerer, selection, items, setup.out, cal, cfg.k,
                              cfg.batch_size)
    if uses_edit(methods, "sae_ts"):
        ts = cfg.targeted()
        # twice the items: the male and female targets each count only the other gender's
        items = calibration_items(setup.steerer, cfg.corpus, cfg.n,
                                  CalibrationConfig(items=2 * ts.items), cfg.seed, setup.items)
        selection = fit_targeted(replace(setup.steerer, selection=selection), selection, items,
                                 setup.out, ts, cfg.batch_size)
    return replace(setup, selection=selection,
                   steerer=replace(setup.steerer, selection=selection))


def target_selection(cfg: SteerSetup, sae, out: Path, labels: Path, concept: Concept
                     ) -> dict:
    """Select latents once per run folder (selection.json), reuse it when resuming. The SAE's
    weights are recorded beside its path: outputs are reused by key, so a folder whose SAE was
    retrained or replaced in place must be refused, not resumed (the backbone is pinned through
    the SAE: `load_sae` refuses one trained on other weights)."""
    path = out / SELECTION
    own = None if concept.preset else json.loads(json.dumps(concept.to_dict()))
    sae_dir = Path(cfg.paths()[1])
    weights = weights_fingerprint(sae_dir)
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("definition") != own:
            raise ValueError(f"{out} holds a run of another definition of {cfg.concept!r}; "
                             "use --out")
        if saved.get("sae") == str(sae_dir.resolve()):
            made = saved.get("sae_weights")
            if made is None:
                log.warning("%s was made before SAE weights were recorded: resuming it assumes "
                            "%s still holds the SAE it was made with", out, sae_dir)
            elif made != weights:
                raise ValueError(f"{out} holds a run made with other weights of {sae_dir} "
                                 f"({made}, now {weights}): the SAE was retrained or replaced "
                                 "since; use --out for a new run")
            sel = load_selection(saved["targets"])
            # A folder started with another --k (or before gender's default became 16) resumes
            # with its own latents; say so, since summary.json's config records this run's k.
            if any(len(s.latents) != cfg.k for s in sel.values()):
                log.warning("%s: resuming its saved selection of %s latents per target, not --k %d",
                            out, sorted({len(s.latents) for s in sel.values()}), cfg.k)
            return sel
        raise ValueError(f"{out} holds a run with another SAE ({saved.get('sae')}); use --out")
    sel = select_concept(sae, ActivationStore(cfg.store, cfg.layer), cfg.corpus, concept,
                         cfg.k, labels if cfg.select == "label" else None, cfg.max_positions,
                         cfg.seed, shift_k=cfg.shift_k)
    atomic_write_json(path, {"sae": str(sae_dir.resolve()), "sae_weights": weights,
                             "targets": save_selection(sel)} | ({"definition": own} if own else {}))
    return sel


def concept_classifier(cfg: SteerSetup, concept: Concept, out: Path) -> ConceptClassifier:
    """A concept of your own's success classifier, fitted once per run folder (classifier.json,
    with the definition and settings it was fitted for) and reused when resuming."""
    path = out / CLASSIFIER
    made_for = json.loads(json.dumps({
        "definition": concept.to_dict(), "corpus": str(Path(cfg.corpus).resolve()),
        "utterances": cfg.classifier_utts, "seed": cfg.seed}))
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("made_for") == made_for:
            return ConceptClassifier.from_dict(saved["classifier"])
        raise ValueError(f"{path} was fitted for another concept, corpus or settings; use --out")
    clf = fit_classifier(cfg.corpus, concept, None, cfg.classifier_utts, cfg.seed)
    atomic_write_json(path, {"made_for": made_for, "classifier": clf.to_dict()})
    return clf


def run_steering(cfg: SteeringConfig) -> dict:
    """Run (or resume) an experiment; returns the summary also written to summary.json."""
    cfg.validate()
    cfg = cfg.resolved()
    methods = cfg.prompt_methods(cfg.method_list())
    start = time.time()
    setup = with_calibration(prepare(cfg), cfg, methods)
    out, sae_dir, hook, selection = setup.out, setup.sae_dir, setup.hook, setup.selection
    concept, classifier, items = setup.concept, setup.classifier, setup.items
    targets, strengths = list(selection), cfg.strengths()
    units = plan_units(items, targets, strengths, methods)
    with torch.no_grad():
        rows = list(run_units(setup.steerer, units, out, batch_size=cfg.batch_size))
    if classifier is None:
        write_csv(rows, out / "metrics.csv")
        table = results_table(rows, strengths)
    else:
        write_csv(rows, out / "metrics.csv", CONCEPT_CSV_FIELDS)
        table = results_table(rows, strengths, (*METRICS, CONCEPT_METRIC))
    summary = {
        "concept": cfg.concept, "out": str(out), "n_items": len(items),
        "sae": {"folder": str(sae_dir), "layer": cfg.layer, "hook": hook,
                "latents": sorted({i for s in selection.values() for i in s.latents}),
                "by_target": {t: s.latents for t, s in selection.items()},
                **({"effect_by_target": {t: s.effect_latents for t, s in selection.items()}}
                   if uses_edit(methods, "sae_effect") else {}),
                "source": {t: s.source for t, s in selection.items()},
                "unit_edit_norm": {t: round(s.unit, 4) for t, s in selection.items()}},
        "strengths": strengths, "results": table,
        "effects": effects(table, targets, strengths), "config": asdict(cfg)}
    if classifier is not None:
        summary["definition"] = concept.to_dict()
        summary["success_measure"] = {
            "metric": CONCEPT_METRIC, "meaning": f"P({classifier.positive}) of the output, by a "
            f"classifier of {classifier.positive} vs {classifier.negative} utterances of the "
            "corpus (interp.instruments.concept); target reached: mean >= 0.5",
            **classifier.report}
    if concept.preset and cfg.concept == "gender":
        summary["gender_flips"] = gender_flips(rows)
    sets = {name: root for m in cfg.judged_methods() for name, root in write_sets(
        rows, out, cfg.concept, m, definition=None if concept.preset else concept).items()}
    if cfg.judge != "none":
        summary["judge"] = judge_sets(sets, out, cfg.judge, cfg.judge_url, cfg.judge_model)
    summary["seconds"] = round(time.time() - start, 1)
    atomic_write_json(out / "summary.json", summary)
    dose_response(table, cfg.concept, targets, out / "dose_response.html")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m steering.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, SteeringConfig)
    summary = run_steering(config_from_args(SteeringConfig, parser.parse_args()))
    print(console_summary(summary))


if __name__ == "__main__":
    run_cli(main)
