"""`python -m interp.models.evaluate`: does TinyCosy follow its prompt, instruction and tags?

On held-out sentences spoken by held-out voices (prompts from the prompt bank), each sentence is
generated three times — no instruction, "Please speak slowly.", "Please speak quickly." — and once
with a `[laughter]` tag in the middle. Measured:
- voice follows the prompt: F0-based gender of the output agrees with the prompt speaker's; and,
  finer, its pitch follows the prompt speaker's within a gender (`pitch_following`): correlation
  of the output's F0 with the prompt's over the held-out voices, against voice-shuffled prompts;
  and whether the output is nearest to its own prompt speaker among the voices of that gender by
  an MFCC speaker fingerprint (`voice_identification`; its ceiling: the espeak references);
- rate follows the instruction: mean voiced duration slow / fast, and normal in between;
- laughter follows the tag: the laughter detector fires with the tag and stays quiet without it;
- content: the recognizer's WER on generated speech next to its WER on the espeak reference of
  the same sentence, and on that reference after the codec round trip (what a perfect LM over
  these speech tokens could reach: the gap splits into codec loss and model loss);
- uncertainty: WER's 95% interval over sentences, and with `--baseline` (an earlier eval.json of the
  same plan) the paired per-sentence difference to it, which is what says whether a new
  checkpoint really reads better;
- teacher forced: WER of the model's greedy tokens given the reference utterance's true past
  (no drift), which splits the model's share of the WER into per-token error and the drift of
  generating from its own output;
- text conditioning: the teacher-forced loss of held-out speech given its own sentence against
  given another held-out sentence of similar length, in nats per token — how much the model
  reads its text at all (near 0: it speaks from the speaker and the length alone);
- attention alignment: whether some head points at the word being spoken, per the corpus's word
  timings (`interp.models.alignment`): a model that reads needs such a pointer into its text.
The listening instruments (`interp.instruments`, weights in data/instruments/) are used when they
are there; without them gender comes from F0 alone, laughter from an interim probe (a token
classifier on log-mel statistics trained on the corpus's laughter spans, `interp.audio.roundtrip`)
and WER is left null. `eval.json` says which measure each figure came from.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from interp.audio import SAMPLE_RATE
from interp.audio.pitch import median_f0, voiced_duration
from interp.audio.roundtrip import fit_laughter_probe, laughter_score
from interp.audio.voice import identify, voice_embedding
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.sentences import TEMPLATES, lexicon
from interp.corpus.table import load_audio, load_table
from interp.corpus.voices import GENDER_F0_SPLIT_HZ
from interp.models.backbone import Backbone
from interp.models.generate import SamplingConfig
from interp.models.registry import load_backbone
from interp.stats import mean_ci

RATES = {"normal": None, "slow": "Please speak slowly.", "fast": "Please speak quickly."}


@dataclass(frozen=True)
class EvalConfig:
    """What to generate and measure."""

    corpus: str = "runs/tinycosy/corpus"
    """corpus (for held-out sentences and the laughter probe's training spans)"""
    model: str = "tinycosy"
    """backbone (`interp.models.registry.load_backbone`): tinycosy, tinycosy:<dir>, a model dir"""
    n: int = 50
    """held-out sentences (each spoken 4 times)"""
    seed: int = 0
    """sampling and selection seed"""
    out: str = ""
    """where eval.json and example wavs go (default: <model>/eval.json)"""
    examples: int = 3
    """sentences whose wavs are kept for listening"""
    tokens: str = ""
    """speech tokens of the corpus, for the text-conditioning figure (default: <corpus>/../tokens;
    skipped when missing)"""
    n_conditioning: int = 200
    """held-out utterances of the text-conditioning figure"""
    n_reference: int = 60
    """espeak renders of held-out sentences by the plan's voices whose round-trip WER says how
    hard these voices are to recognise (`voices_reference_wer`)"""
    top_k: int = SamplingConfig.top_k
    """sampling: at most this many candidates per step (1 = greedy, with the repetition-aware
    fallback still on)"""
    top_p: float = SamplingConfig.top_p
    """sampling: nucleus mass"""
    voices: str = "heldout"
    """prompt voices: heldout (the held-out voices, the design's measure) or train (as many
    training voices of each gender: the control that says what a voice's being unseen costs)"""
    baseline: str = ""
    """an earlier eval.json made with the same --n and --seed (another checkpoint): adds the paired
    per-sentence differences to it (`vs_baseline`)"""


def with_laughter(text: str, rng: random.Random) -> str:
    words = text.split()
    at = rng.randint(1, max(1, len(words) - 1))
    return " ".join(words[:at] + ["[laughter]"] + words[at:])


def _f0(audio: np.ndarray) -> float | None:
    """Median F0 (Hz) of the voiced frames; None when nothing (or under 0.1 s) is there."""
    f0 = median_f0(audio, SAMPLE_RATE) if len(audio) > 1600 else float("nan")
    return None if f0 != f0 else round(f0, 2)


def _gender(f0: float | None) -> str | None:
    return None if f0 is None else ("male" if f0 < GENDER_F0_SPLIT_HZ else "female")


def _semitones(hz: float) -> float:
    return 12 * math.log2(hz / 100.0)


def pitch_following(rows: list[dict], n_shuffles: int = 2000, seed: int = 0) -> dict | None:
    """Does the output's pitch follow the prompt speaker's beyond their gender? Over the plan's
    voices, the output's median F0 (semitones, averaged over a voice's sentences and rates) against
    the prompt speaker's, both centred on their gender's mean: Pearson r, and how often prompts
    shuffled among voices of the same gender correlate as well (`p_shuffled`). Per sample, the
    distance to its own prompt's F0 against the mean distance to the other same-gender voices'
    (`other_minus_own_st` > 0: closer to its own speaker than to others of that gender)."""
    samples = [(r["voice"], r["gender"], _semitones(r["prompt_f0"]),
                float(np.mean([_semitones(r[k]["f0"]) for k in RATES if r[k].get("f0")])))
               for r in rows if r.get("prompt_f0") and any(r[k].get("f0") for k in RATES)]
    prompt = {v: (g, p) for v, g, p, _ in samples}
    genders = sorted({g for g, _ in prompt.values()})
    if len(prompt) < 4 or any(sum(g == x for g, _ in prompt.values()) < 2 for x in genders):
        return None  # too few voices per gender to say anything
    voices = sorted(prompt)
    out = np.array([np.mean([o for v, _, _, o in samples if v == voice]) for voice in voices])
    gender = np.array([prompt[v][0] for v in voices])
    given = np.array([prompt[v][1] for v in voices])

    def centred(x: np.ndarray) -> np.ndarray:
        return x - np.array([x[gender == g].mean() for g in gender])

    def r_of(p: np.ndarray) -> float:
        a, b = centred(p), centred(out)
        return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum() + 1e-12))

    r = r_of(given)
    rng = np.random.default_rng(seed)
    shuffled = given.copy()
    as_good = 0
    for _ in range(n_shuffles):
        for g in genders:
            idx = np.flatnonzero(gender == g)
            shuffled[idx] = rng.permutation(given[idx])
        as_good += r_of(shuffled) >= r
    own = [abs(o - p) for _, _, p, o in samples]
    other = [float(np.mean([abs(o - q) for w, (h, q) in prompt.items() if h == g and w != v]))
             for v, g, _, o in samples]
    return {"n_voices": len(voices), "n_samples": len(samples), "r_within_gender": round(r, 3),
            "p_shuffled": round((as_good + 1) / (n_shuffles + 1), 4),
            "prompt_spread_st": round(float(centred(given).std()), 2),
            "output_spread_st": round(float(centred(out).std()), 2),
            "offset_st": round(float(np.mean([o - p for _, _, p, o in samples])), 2),
            "own_prompt_st": round(float(np.mean(own)), 2),
            "other_prompt_st": round(float(np.mean(other)), 2),
            "other_minus_own_st": mean_ci([b - a for a, b in zip(own, other, strict=True)]),
            # per voice: gender, prompt and mean output F0 in semitones re 100 Hz (for a plot)
            "per_voice": {v: [g, round(float(p), 2), round(float(o), 2)]
                          for v, g, p, o in zip(voices, gender, given, out, strict=True)}}


class Listener:
    """The listening instruments when shipped, else the interim measures named above."""

    def __init__(self, corpus: Path, codec):
        self.codec, self.instruments = codec, None
        try:
            import interp.instruments as instruments

            instruments.laughter_probability(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # loads weights
            self.instruments = instruments
        except (ImportError, OSError, ValueError) as exc:
            logging.getLogger(__name__).warning("listening instruments unavailable (%s); "
                                                "using interim measures", exc)
            self.probe = fit_laughter_probe(corpus, codec, 300)

    @property
    def kind(self) -> str:
        return "listening instruments (interp.instruments)" if self.instruments else (
            "interim: F0 gender, log-mel laughter probe, no recognizer")

    def laughter(self, audio: np.ndarray) -> float:
        if len(audio) < 1600:
            return 0.0
        if self.instruments:
            return float(self.instruments.laughter_probability(audio, SAMPLE_RATE))
        return laughter_score(audio, self.codec, self.probe)

    def p_male(self, audio: np.ndarray) -> float | None:
        if not self.instruments or len(audio) < 1600:
            return None
        return float(self.instruments.p_male(audio, SAMPLE_RATE))

    def transcribe(self, audio: np.ndarray) -> str | None:
        if not self.instruments or len(audio) < 1600:
            return None
        return self.instruments.transcribe(audio, SAMPLE_RATE)

    def wer(self, audio: np.ndarray, text: str, heard: str | None = None) -> float | None:
        """WER of `audio` against `text` (`heard`: its transcript, when already made)."""
        heard = heard if heard is not None else self.transcribe(audio)
        if heard is None:
            return None
        from interp.instruments.text import wer

        return float(wer(text, heard))


def corpus_tokens(corpus: Path, tokens: Path) -> tuple[list[dict], dict] | None:
    """The corpus table and its speech tokens, read once for the teacher-forced figures; None
    (with a warning) when the corpus has no speech tokens here."""
    from interp.audio.tokenize_corpus import load_tokens

    if not (tokens / "manifest.json").exists():
        logging.getLogger(__name__).warning("no speech tokens in %s: text conditioning and "
                                            "teacher-forced WER skipped", tokens)
        return None
    return load_table(corpus), load_tokens(tokens)


def text_conditioning(engine: Backbone, rows: list[dict], codes: dict, n: int) -> dict:
    """Held-out loss (nats per speech token, teacher-forced) of heldout_voices utterances given
    their own sentence and given another one of similar length (swapped in pairs); `gain` is
    what reading the text is worth. `rows`, `codes`: the corpus table and its speech tokens."""
    from interp.models.data import make_examples
    from interp.models.loss import heldout_loss

    held = [r for r in rows if r["split"] == "heldout_voices"][:n]
    swapped = [dict(r) for r in held]
    by_len = sorted(range(len(held)), key=lambda i: len(held[i]["text"]))
    for a, b in zip(by_len[0::2], by_len[1::2], strict=False):
        swapped[a]["text"], swapped[b]["text"] = held[b]["text"], held[a]["text"]
    own, other = (make_examples(r, codes, engine.tokenizer, drop_prompt_text=0.0,
                                prompt_rows=rows) for r in (held, swapped))
    right, wrong = heldout_loss(engine.model, own, 16), heldout_loss(engine.model, other, 16)
    return {"n": len(own), "own_text": round(right, 4), "other_text": round(wrong, 4),
            "gain": round(wrong - right, 4)}


def text_alignment(engine: Backbone, rows: list[dict], codes: dict, n: int) -> dict | None:
    """Does a head point at the word being spoken? `interp.models.alignment`'s report on n
    heldout_sentences utterances (teacher-forced): the best head, chance, and each layer's best
    on-word share. None for a front end without character offsets (phonemes)."""
    from interp.models.alignment import alignment_report
    from interp.models.data import make_examples

    held = [r for r in rows if r["split"] == "heldout_sentences"][:n]
    examples = make_examples(held, codes, engine.tokenizer, drop_prompt_text=0.0, prompt_rows=rows)
    if not examples or examples[0].spoken_span is None:
        return None
    rep = alignment_report(engine.model, examples)
    return {"n": len(examples), "frames": rep["frames"], "chance": rep["chance"],
            "best_head": rep["best_head"],
            "best_on_word_per_layer": [round(max(r), 4) for r in rep["on_word"]]}


def teacher_forced(engine: Backbone, listen: Listener, rows: list[dict], codes: dict,
                   refs: list[dict]) -> dict | None:
    """The model's speech given the true past: each token its greedy choice after the reference
    utterance's real tokens (no drift), decoded and recognized. Between the codec round trip and
    free generation, it splits the model's share of the WER into per-token error and the drift of
    generating from its own output. None without a recognizer."""
    from interp.models.data import make_examples

    if not listen.instruments:
        return None
    examples = make_examples(refs, codes, engine.tokenizer, drop_prompt_text=0.0,
                             prompt_rows=rows)
    n_codes = engine.model.cfg.speech_codes
    wers, hits = [], []
    for ex, ref in zip(examples, refs, strict=True):
        tf = engine.teacher_forced(ex.text_ids, ex.prompt, ex.target)
        logits = tf.logits[tf.target_start : tf.target_start + len(ex.target), :n_codes]
        greedy = logits.argmax(-1).cpu().numpy()
        hits.append(float((greedy == ex.target.numpy()).mean()))
        wers.append(listen.wer(engine.render(greedy), ref["text_plain"]))
    return {"n": len(wers), "wer": round(float(np.mean(wers)), 4),
            "token_accuracy": round(float(np.mean(hits)), 4)}


def voices_reference_wer(corpus: str | Path, voices: set[str], listen: Listener,
                         engine: Backbone, n: int = 60, seed: int = 0) -> dict | None:
    """The recognizer's WER on up to `n` espeak renders of held-out sentences by `voices`, after
    the codec round trip: how hard these voices are to recognise in themselves, so that plans
    with other voices (`--voices train`) can be compared. None without a recognizer."""
    if not listen.instruments:
        return None
    rows = [r for r in load_table(corpus) if r["split"] != "train" and r["voice_id"] in voices]
    random.Random(seed).shuffle(rows)
    return mean_ci([listen.wer(engine.render(engine.speech_tokens(load_audio(corpus, r)[0])),
                               r["text_plain"]) for r in rows[:n]])


def heldout_plan(cfg: EvalConfig, engine: Backbone) -> list[tuple[str, str, str, dict]]:
    """(sentence, voice id, voice gender, espeak reference row) for n held-out sentences and
    held-out voices (`--voices train`: the same sentences, as many training voices of each gender
    instead)."""
    if cfg.voices not in ("heldout", "train"):
        raise ValueError(f"--voices {cfg.voices!r}: give heldout or train")
    held = sorted(v for v, p in engine.voices.items() if p["split"] == "heldout_voices")
    rows = load_table(cfg.corpus, "heldout_voices")  # the sentences, whichever voices speak them
    # the espeak rendering of each sentence, one without tags where there is one
    reference = {r["text_plain"]: r for r in sorted(rows, key=lambda r: -len(r["tags"]))}
    sentences = sorted(reference)
    voices = held
    if cfg.voices == "train":  # the control: same number and genders, voices it trained on
        pick = random.Random(cfg.seed)
        voices = []
        for g in sorted({engine.voices[v]["gender"] for v in held}):
            seen = sorted(v for v, p in engine.voices.items()
                          if p["split"] != "heldout_voices" and p["gender"] == g)
            voices += pick.sample(seen, sum(engine.voices[v]["gender"] == g for v in held))
        voices.sort()
    if not sentences or not voices:
        raise ValueError("no held-out sentences or voices: evaluate on the corpus the model "
                         "was trained on")
    rng = random.Random(cfg.seed)
    rng.shuffle(sentences)
    return [(s, voices[i % len(voices)], engine.voices[voices[i % len(voices)]]["gender"],
             reference[s]) for i, s in enumerate(sentences[: cfg.n])]


def evaluate_tts(cfg: EvalConfig) -> dict:
    engine = load_backbone(cfg.model)
    if why := engine.render_missing():
        raise ValueError(f"cannot evaluate {cfg.model}: {why}")
    plan = heldout_plan(cfg, engine)
    baseline = _load_baseline(Path(cfg.baseline), plan) if cfg.baseline else None
    listen = Listener(Path(cfg.corpus), getattr(engine, "codec", None))
    out = Path(cfg.out) if cfg.out else Path(getattr(engine, "folder", None) or "runs/eval")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    sampling = SamplingConfig(top_k=cfg.top_k, top_p=cfg.top_p)
    rows = []
    fingerprints: dict[str, list[float] | None] = {}  # of each prompt, through the codec
    for i, (text, voice, gender, ref) in enumerate(tqdm(plan, desc="generate")):
        ref_audio = load_audio(cfg.corpus, ref)[0]
        roundtrip = engine.render(engine.speech_tokens(ref_audio))
        if voice not in fingerprints:
            prompt_audio = engine.render(np.asarray(engine.voices[voice]["tokens"]))
            fingerprints[voice] = voice_embedding(prompt_audio)
        rec: dict = {"text": text, "voice": voice, "gender": gender,
                     "prompt_f0": engine.voices[voice].get("f0_median"),
                     "prompt_embedding": fingerprints[voice],
                     "reference_voice": ref["voice_id"],
                     "reference_embedding": voice_embedding(roundtrip),
                     "wer_reference": listen.wer(ref_audio, text),
                     "wer_roundtrip_reference": listen.wer(roundtrip, text)}
        for rate, instruction in RATES.items():
            audio = engine.tts(text, voice, instruction, seed=cfg.seed + i, sampling=sampling)
            f0 = _f0(audio)
            rec[rate] = {"gender": _gender(f0), "f0": f0, "p_male": listen.p_male(audio),
                         "seconds": len(audio) / SAMPLE_RATE,
                         "voiced": voiced_duration(audio, SAMPLE_RATE) if len(audio) else 0.0}
            if rate == "normal":
                rec[rate]["voice_embedding"] = voice_embedding(audio)
                rec["laughter_without_tag"] = listen.laughter(audio)
                rec["transcript"] = listen.transcribe(audio)  # kept: what the errors are
                rec["wer"] = listen.wer(audio, text, rec["transcript"])
            if i < cfg.examples:
                (out / "examples").mkdir(parents=True, exist_ok=True)
                sf.write(out / "examples" / f"{i:02d}_{rate}.wav", audio, SAMPLE_RATE)
        tagged = with_laughter(text, rng)
        audio = engine.tts(tagged, voice, None, seed=cfg.seed + i, sampling=sampling)
        rec["laughter_with_tag"] = listen.laughter(audio)
        if i < cfg.examples:
            sf.write(out / "examples" / f"{i:02d}_laughter.wav", audio, SAMPLE_RATE)
        rows.append(rec)
    tokens = Path(cfg.tokens) if cfg.tokens else Path(cfg.corpus).parent / "tokens"
    conditioning = forced = alignment = None
    if (table := corpus_tokens(Path(cfg.corpus), tokens)) is not None:
        conditioning = text_conditioning(engine, *table, cfg.n_conditioning)
        forced = teacher_forced(engine, listen, *table, [p[3] for p in plan])
        alignment = text_alignment(engine, *table, cfg.n_conditioning)
    voices_wer = voices_reference_wer(cfg.corpus, {p[1] for p in plan}, listen, engine,
                                      cfg.n_reference)
    result = summarize(rows) | {"voices_reference_wer": voices_wer,
                                "text_conditioning_nats": conditioning,
                                "teacher_forced": forced, "attention_alignment": alignment,
                                "measured_with": listen.kind, "config": asdict(cfg)}
    if baseline is not None:
        result["vs_baseline"] = compare(baseline, rows) | {"baseline": cfg.baseline}
    (out / "eval.json").write_text(json.dumps(result | {"samples": rows}, indent=1))
    return result


def load_samples(path: Path) -> list[dict]:
    """The per-sentence samples of an eval.json written by this command."""
    if not path.is_file():
        raise FileNotFoundError(f"no eval.json at {path}; write one with "
                                "python -m interp.models.evaluate")
    samples = json.loads(path.read_text()).get("samples")
    if not samples:
        raise ValueError(f"{path} has no per-sentence samples; re-run its evaluation with this "
                         "version of python -m interp.models.evaluate")
    return samples


def _load_baseline(path: Path, plan: list[tuple]) -> list[dict]:
    """The baseline's samples, checked before anything is generated to be of the same plan."""
    samples = load_samples(path)
    _check_same_plan(samples, [(text, voice) for text, voice, *_ in plan], str(path))
    return samples


def _check_same_plan(baseline: list[dict], plan: list[tuple[str, str]], name: str,
                     same_voices: bool = True) -> None:
    if same_voices and [(b["text"], b["voice"]) for b in baseline] != plan:
        raise ValueError(f"{name} was made on other sentences or voices; evaluate both with the "
                         "same --corpus, --n and --seed")
    if [b["text"] for b in baseline] != [t for t, _ in plan]:
        raise ValueError(f"{name} was made on other sentences; evaluate both with the same "
                         "--corpus, --n and --seed")


def compare(baseline: list[dict], rows: list[dict], same_voices: bool = True) -> dict:
    """Paired per-sentence differences (new - baseline) of WER and of laughter with the tag, with
    95% CIs; the rows must come from the same plan (same sentences and, unless `same_voices` is
    off, voices, in order)."""
    _check_same_plan(baseline, [(r["text"], r["voice"]) for r in rows], "the baseline",
                     same_voices)
    pairs = [(b["wer"], r["wer"]) for b, r in zip(baseline, rows, strict=True)
             if b.get("wer") is not None and r.get("wer") is not None]
    return {
        "wer_diff": mean_ci([new - old for old, new in pairs]),
        "wer_better_worse_same": [sum(n < o for o, n in pairs), sum(n > o for o, n in pairs),
                                  sum(n == o for o, n in pairs)],
        "laughter_with_tag_diff": mean_ci([float(r["laughter_with_tag"] > 0.5)
                                           - float(b["laughter_with_tag"] > 0.5)
                                           for b, r in zip(baseline, rows, strict=True)]),
    }


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def slot_words() -> set[str]:
    """Words that only the grammar's slots put in a sentence (nouns, names, places, …): the
    content a sentence carries, as opposed to its template's fixed words."""
    fixed = {w for t in TEMPLATES for w in _words(re.sub(r"\{\w+\}", " ", t))}
    return {w for fill in lexicon().values() for phrase in fill for w in _words(phrase)} - fixed


def word_recall(rows: list[dict]) -> dict:
    """Share of the sentence's words found in the transcript (bag of words, each heard word used
    once), split into template words and slot words (`slot_words`): a model that coasts on the
    grammar says the former and swaps the latter."""
    slot = slot_words()
    hits: dict[str, list[bool]] = {"template": [], "slot": []}
    for r in rows:
        if r.get("transcript") is None:
            continue
        heard = Counter(_words(r["transcript"]))
        for w in _words(r["text"]):
            is_slot = w in slot or (w.endswith("s") and w[:-1] in slot)  # "{noun}s"
            hits["slot" if is_slot else "template"].append(heard[w] > 0)
            heard[w] -= heard[w] > 0
    return {k: round(float(np.mean(v)), 4) if v else None for k, v in hits.items()} | {
        f"n_{k}": len(v) for k, v in hits.items()}


def voice_identification(rows: list[dict]) -> dict | None:
    """Is each output (normal rate) nearest, by the MFCC fingerprint (`interp.audio.voice`), to
    its own prompt among the plan's prompts of that gender? Beside it, the same for the espeak
    reference of each sentence after the codec round trip, spoken by one of the plan's voices (the
    held-out plan): how well the fingerprint tells these voices apart at all."""
    enrolled = {r["voice"]: r["prompt_embedding"] for r in rows if r.get("prompt_embedding")}
    gender = {r["voice"]: r["gender"] for r in rows}
    if len(enrolled) < 2:
        return None
    same = {v: [w for w in enrolled if gender[w] == gender[v]] for v in enrolled}

    def queries(key, who) -> list:
        return [(e, same[v], v) for r in rows if (e := key(r)) and (v := who(r)) in enrolled
                and len(same[v]) > 1]

    outputs = queries(lambda r: r["normal"].get("voice_embedding"), lambda r: r["voice"])
    refs = queries(lambda r: r.get("reference_embedding"), lambda r: r.get("reference_voice"))
    return {"outputs": identify(outputs, enrolled),
            "espeak_references": identify(refs, enrolled) if refs else None}


def summarize(rows: list[dict]) -> dict:
    outs = [(r["gender"], r[k]["gender"]) for r in rows for k in RATES]
    voiced = {k: float(np.mean([r[k]["voiced"] for r in rows])) for k in RATES}
    with_tag = np.array([r["laughter_with_tag"] for r in rows])
    without = np.array([r["laughter_without_tag"] for r in rows])
    clf = [(g, r[k]["p_male"]) for r in rows for k in RATES for g in [r["gender"]]
           if r[k]["p_male"] is not None]
    wers = [(r["wer"], r["wer_reference"]) for r in rows if r["wer"] is not None]
    rt = [r["wer_roundtrip_reference"] for r in rows
          if r.get("wer_roundtrip_reference") is not None]
    return {
        "n_sentences": len(rows), "n_voices": len({r["voice"] for r in rows}),
        "gender_agreement": round(float(np.mean([a == b for a, b in outs])), 4),
        "gender_agreement_classifier": round(float(np.mean(
            [(p > 0.5) == (g == "male") for g, p in clf])), 4) if clf else None,
        "pitch_following": pitch_following(rows),
        "voice_identification": voice_identification(rows),
        "voiced_seconds": {k: round(v, 3) for k, v in voiced.items()},
        "slow_over_fast": round(voiced["slow"] / max(voiced["fast"], 1e-6), 3),
        "normal_between": voiced["fast"] < voiced["normal"] < voiced["slow"],
        "laughter_with_tag": round(float(np.mean(with_tag > 0.5)), 4),
        "laughter_without_tag": round(float(np.mean(without > 0.5)), 4),
        "wer": round(float(np.mean([w for w, _ in wers])), 4) if wers else None,
        "wer_ci95": mean_ci([w for w, _ in wers])["ci95"] if wers else None,
        "wer_espeak_reference": round(float(np.mean([w for _, w in wers])), 4) if wers else None,
        "wer_roundtrip_reference": round(float(np.mean(rt)), 4) if rt else None,
        "word_recall": word_recall(rows),
        "goals": {"gender_agreement": ">= 0.95", "slow_over_fast": ">= 1.8",
                  "laughter_with_tag": ">= 0.90", "laughter_without_tag": "<= 0.05",
                  "wer - wer_espeak_reference": "<= 0.15"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.models.evaluate", description=__doc__)
    add_config_args(parser, EvalConfig)
    r = evaluate_tts(config_from_args(EvalConfig, parser.parse_args()))
    print(f"\nTinyCosy on {r['n_sentences']} held-out sentences × {r['n_voices']} "
          f"{'held-out' if r['config']['voices'] == 'heldout' else 'training'} voices"
          f" (sampling top-k {r['config']['top_k']}, top-p {r['config']['top_p']}):")
    print(f"  voice follows prompt (F0 gender agrees): {r['gender_agreement']:.1%}  (goal ≥ 95%)")
    if (p := r["pitch_following"]) is not None:
        print(f"  pitch follows the prompt within a gender: r {p['r_within_gender']} over "
              f"{p['n_voices']} voices (shuffled prompts as good: p {p['p_shuffled']}); output "
              f"{p['own_prompt_st']} semitones from its own prompt, {p['other_prompt_st']} from "
              f"other voices of that gender")
    if (v := r["voice_identification"]) is not None and v["outputs"]["n"]:
        o, e = v["outputs"], v["espeak_references"]
        print(f"  sounds like its own prompt speaker (MFCC fingerprint, nearest among that gender's"
              f" voices): {o['accuracy']:.0%} (chance {o['chance']:.0%})"
              + (f"; espeak references {e['accuracy']:.0%}" if e else ""))
    print(f"  voiced seconds {r['voiced_seconds']}, slow/fast {r['slow_over_fast']}  (goal ≥ 1.8),"
          f" normal in between: {r['normal_between']}")
    print(f"  laughter with tag {r['laughter_with_tag']:.0%} (goal ≥ 90%), without "
          f"{r['laughter_without_tag']:.0%} (goal ≤ 5%)")
    if (c := r["text_conditioning_nats"]) is not None:
        print(f"  reads its text: held-out loss {c['own_text']} nats/token with its own sentence,"
              f" {c['other_text']} with another (gain {c['gain']})")
    print(f"  gender by classifier: {r['gender_agreement_classifier']};  WER {r['wer']} vs espeak "
          f"reference {r['wer_espeak_reference']} (after the codec round trip "
          f"{r['wer_roundtrip_reference']});  measured with {r['measured_with']}")
    if (vw := r["voices_reference_wer"]) is not None:
        print(f"  the plan's voices in espeak renders of held-out sentences, after the round trip:"
              f" WER {vw['mean']} (n {vw['n']}; how hard these voices are to recognise)")
    if (f := r["teacher_forced"]) is not None:
        print(f"  where the words go: codec round trip WER {r['wer_roundtrip_reference']}, model "
              f"given the true past {f['wer']} (greedy, {f['token_accuracy']:.0%} of tokens right),"
              f" generating from its own output {r['wer']}")
    if (a := r["attention_alignment"]) is not None:
        b = a["best_head"]
        print(f"  points at the word it speaks: best head (layer {b['layer']} head {b['head']}) has "
              f"its top sentence token on that word in {b['on_word']:.0%} of frames (chance "
              f"{a['chance']:.0%})")
    if (w := r["word_recall"])["slot"] is not None:
        print(f"  words heard: template words {w['template']:.0%}, slot words (the content) "
              f"{w['slot']:.0%}")
    if (v := r.get("vs_baseline")) is not None and (d := v["wer_diff"])["mean"] is not None:
        print(f"  against {v['baseline']}: WER {d['mean']:+} (95% CI {d['ci95'][0]:+} to "
              f"{d['ci95'][1]:+}), sentences better / worse / same {v['wer_better_worse_same']}")


if __name__ == "__main__":
    run_cli(main)
