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
  these speech tokens could reach: the gap splits into codec loss and model loss); each with the
  lexicon-constrained decode (`wer`, snapped to the words the recognizer was trained on) and the
  greedy open-vocabulary one (`wer_greedy`, the fair figure on words outside that lexicon);
- domain (`--domain`): held-out sentences of the planted-concept grammar (the default), of open
  English (`interp.corpus.open_domain`, with words no training sentence has; a corpus built with
  `--open-frac`), or n of each with the figures of each under `by_domain`;
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
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from interp.audio import SAMPLE_RATE
from interp.audio.pitch import median_f0, voiced_duration
from interp.audio.roundtrip import fit_laughter_probe, laughter_score
from interp.audio.voice import voice_embedding
from interp.cli import StageInterrupted, add_config_args, config_from_args, run_cli, stop_requests
from interp.corpus.sentences import TEMPLATES, lexicon
from interp.corpus.table import load_audio, load_table
from interp.corpus.voices import GENDER_F0_SPLIT_HZ
from interp.models.backbone import Backbone
from interp.models.eval_plan import (
    EVAL_DOMAINS,
    RATES,
    compare,
    in_domain,
    load_baseline,
    plan_sentences,
)
from interp.models.eval_report import print_summary
from interp.models.eval_text import corpus_tokens, text_alignment, text_conditioning
from interp.models.eval_voice import pitch_following, voice_identification
from interp.models.generate import SamplingConfig
from interp.models.registry import load_backbone
from interp.stats import mean_ci


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
    asr: str = ""
    """recogniser folder (a `python -m interp.instruments.train asr` output); empty = the shipped
    data/instruments/asr. With a word list in it (`wordlist.tsv`), the open-vocabulary decode's
    figures (`wer_open`, …) come beside the lexicon and greedy ones"""
    instruments: str = ""
    """swap other listening instruments too: gender=DIR,laughter=DIR (asr=DIR is --asr's;
    docs/instruments.md)"""
    domain: str = "grammar"
    """held-out sentences of: grammar (the planted-concept grammar), open (open English with
    words unseen in training: a corpus built with --open-frac > 0) or both (n of each; figures
    per domain under `by_domain`)"""
    rescore: str = ""
    """an earlier evaluation folder of the same model and plan: hear its outputs again (its
    eval.json keeps each output's speech tokens) instead of generating them, e.g. with other
    ears (--asr, --instruments); every figure is measured anew, into --out"""
    codec: str = ""
    """render through this codec folder instead of the model's own, when it has the same code
    book (e.g. one with a learned decoder, `python -m interp.audio fit-decoder`): the tokens and
    what is generated stay the same, the sound changes"""


def heldout_plan(cfg: EvalConfig, engine: Backbone) -> list[tuple[str, str, str, dict]]:
    """(sentence, voice id, voice gender, espeak reference row) of `cfg`'s plan
    (`eval_plan.plan_sentences`)."""
    return plan_sentences(cfg.corpus, engine, cfg.n, cfg.seed, cfg.voices, cfg.domain)


def tag_place(text: str, rng: random.Random) -> int:
    """The word index before which `with_laughter` puts the tag (a word boundary inside the
    sentence), drawn from `rng` as it draws it."""
    return rng.randint(1, max(1, len(text.split()) - 1))


def with_laughter(text: str, rng: random.Random) -> str:
    words, at = text.split(), tag_place(text, rng)
    return " ".join(words[:at] + ["[laughter]"] + words[at:])


def _f0(audio: np.ndarray) -> float | None:
    """Median F0 (Hz) of the voiced frames; None when nothing (or under 0.1 s) is there."""
    f0 = median_f0(audio, SAMPLE_RATE) if len(audio) > 1600 else float("nan")
    return None if f0 != f0 else round(f0, 2)


def _gender(f0: float | None) -> str | None:
    return None if f0 is None else ("male" if f0 < GENDER_F0_SPLIT_HZ else "female")


class Listener:
    """The listening instruments when shipped, else the interim measures named above."""

    def __init__(self, corpus: Path, codec, asr: str = ""):
        self.codec, self.instruments, self.asr_dir = codec, None, asr or None
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
        return self.hear(audio)[0]

    def hear(self, audio: np.ndarray) -> tuple[str | None, str | None, str | None]:
        """(lexicon-constrained transcript, the greedy one, the open-vocabulary one) from one pass
        of the recognizer; None for each without one or under 0.1 s of audio, and for the open one
        when the recognizer has no word list."""
        if not self.instruments or len(audio) < 1600:
            return None, None, None
        from interp.instruments.meter import asr_model

        r = asr_model(self.asr_dir).readings(audio, SAMPLE_RATE)
        return r["lexicon"], r["greedy"], r.get("open")

    def wer(self, audio: np.ndarray, text: str, heard: str | None = None) -> float | None:
        """WER of `audio` against `text` (`heard`: its transcript, when already made)."""
        heard = heard if heard is not None else self.transcribe(audio)
        if heard is None:
            return None
        from interp.instruments.text import wer

        return float(wer(text, heard))


def teacher_forced(engine: Backbone, listen: Listener, rows: list[dict], codes: dict,
                   refs: list[dict]) -> dict | None:
    """The model's speech given the true past: each token its greedy choice after the reference
    utterance's real tokens (no drift), decoded and recognized. Between the codec round trip and
    free generation, it splits the model's share of the WER into per-token error and the drift of
    generating from its own output. None without a recognizer or without a reference that has
    a prompt (a voice heard once)."""
    from interp.models.data import make_examples

    if not listen.instruments:
        return None
    examples = make_examples(refs, codes, engine.tokenizer, drop_prompt_text=0.0,
                             prompt_rows=rows)
    if not examples:
        return None
    n_codes = engine.model.cfg.speech_codes
    text = {r["utt_id"]: r["text_plain"] for r in refs}  # a ref whose voice has no prompt: none
    wers, hits = [], []
    for ex in examples:
        tf = engine.teacher_forced(ex.text_ids, ex.prompt, ex.target)
        logits = tf.logits[tf.target_start : tf.target_start + len(ex.target), :n_codes]
        greedy = logits.argmax(-1).cpu().numpy()
        hits.append(float((greedy == ex.target.numpy()).mean()))
        wers.append(heard_wers(listen, engine.render(greedy), text[ex.utt_id], "wer"))
    return {"n": len(wers), **{k: _mean(wers, k) for k in ("wer", "wer_greedy", "wer_open")},
            "token_accuracy": round(float(np.mean(hits)), 4)}


def voices_reference_wer(corpus: str | Path, voices: set[str], listen: Listener,
                         engine: Backbone, n: int = 60, seed: int = 0,
                         domain: str = "both") -> dict | None:
    """The recognizer's WER on up to `n` espeak renders of held-out sentences (of `domain`) by
    `voices`, after the codec round trip: how hard these voices are to recognise in themselves,
    so that plans with other voices (`--voices train`) can be compared. None without a
    recognizer."""
    if not listen.instruments:
        return None
    rows = [r for r in load_table(corpus) if r["split"] != "train" and r["voice_id"] in voices
            and in_domain(r, domain)]
    random.Random(seed).shuffle(rows)
    return mean_ci([listen.wer(engine.render(engine.speech_tokens(load_audio(corpus, r)[0])),
                               r["text_plain"]) for r in rows[:n]])


def _mean(rows: list[dict], key: str) -> float | None:
    """Mean of `key` over the rows that have it (None when none does)."""
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def heard_wers(listen: Listener, audio: np.ndarray, text: str, name: str,
               keep: bool = False) -> dict:
    """{`name`: WER with the lexicon-constrained decode, `name`_greedy: with the greedy one,
    `name`_open: with the open-vocabulary one} of `audio` against `text` (None without a
    recognizer); `keep` adds the transcripts."""
    from interp.instruments.text import wer

    heard = dict(zip(("", "_greedy", "_open"), listen.hear(audio), strict=True))
    out = {f"{name}{k}": None if h is None else float(wer(text, h)) for k, h in heard.items()}
    return out | ({f"transcript{k}": h for k, h in heard.items()} if keep else {})


OUTPUTS = (*RATES, "laughter")
"""The four outputs of each plan item, in the order they are generated: each rate, then the
sentence with a laughter tag."""


def speak(engine: Backbone, listen: Listener, cfg: EvalConfig, i: int, item: tuple,
          rng: random.Random, out: Path, fingerprints: dict) -> dict:
    """Plan item `i`: its sentence spoken at each rate and once with a laughter tag, measured
    (`measure`)."""
    text, voice = item[:2]
    sampling = SamplingConfig(top_k=cfg.top_k, top_p=cfg.top_p)
    # the three rates and the laughter tag in one KV-cached batch (Backbone.generate_batch):
    # each row's tokens are those `engine.tts` makes alone
    asks = [(text, instruction) for instruction in RATES.values()]
    asks.append((with_laughter(text, rng), None))
    reqs = [engine.request(t, voice, instruction) for t, instruction in asks]
    toks = engine.generate_batch(reqs, replace(sampling, seed=cfg.seed + i))
    return measure(engine, listen, cfg, i, item, dict(zip(OUTPUTS, toks, strict=True)), out,
                   fingerprints)


def measure(engine: Backbone, listen: Listener, cfg: EvalConfig, i: int, item: tuple,
            toks: dict[str, list[int]], out: Path, fingerprints: dict) -> dict:
    """Plan item `i`'s record from its four outputs' speech tokens (`OUTPUTS`): the espeak
    reference and its codec round trip heard, each output rendered and measured, the tokens kept
    (`speech_tokens`, what `--rescore` hears again), and the wavs kept under `out`/examples for
    the first `cfg.examples` items. A function of the tokens alone: generating and rescoring
    measure alike."""
    text, voice, gender, ref = item
    ref_audio = load_audio(cfg.corpus, ref)[0]
    roundtrip = engine.render(engine.speech_tokens(ref_audio))
    if voice not in fingerprints:  # of each prompt, through the codec
        fingerprints[voice] = voice_embedding(engine.render(np.asarray(engine.voices[voice]["tokens"])))
    rec: dict = {"text": text, "voice": voice, "gender": gender, "domain": ref["domain"],
                 "prompt_f0": engine.voices[voice].get("f0_median"),
                 "prompt_embedding": fingerprints[voice], "reference_voice": ref["voice_id"],
                 "reference_embedding": voice_embedding(roundtrip),
                 **heard_wers(listen, ref_audio, text, "wer_reference"),
                 **heard_wers(listen, roundtrip, text, "wer_roundtrip_reference")}
    speech = {k: engine.render(t, voice) if len(t) else np.zeros(0, np.float32)
              for k, t in toks.items()}
    for rate in RATES:
        audio = speech[rate]
        f0 = _f0(audio)
        rec[rate] = {"gender": _gender(f0), "f0": f0, "p_male": listen.p_male(audio),
                     "seconds": len(audio) / SAMPLE_RATE,
                     "voiced": voiced_duration(audio, SAMPLE_RATE) if len(audio) else 0.0}
        if rate == "normal":
            rec[rate]["voice_embedding"] = voice_embedding(audio)
            rec["laughter_without_tag"] = listen.laughter(audio)
            rec |= heard_wers(listen, audio, text, "wer", keep=True)  # transcripts: the errors
    rec["laughter_with_tag"] = listen.laughter(speech["laughter"])
    if i < cfg.examples:
        (out / "examples").mkdir(parents=True, exist_ok=True)
        for k, audio in speech.items():
            sf.write(out / "examples" / f"{i:02d}_{k}.wav", audio, SAMPLE_RATE)
    rec["speech_tokens"] = {k: [int(x) for x in t] for k, t in toks.items()}
    return rec


PLAN_FIELDS = ("model", "corpus", "tokens", "n", "seed", "voices", "domain", "top_k", "top_p")
"""The model, corpus, plan and sampling of an evaluation: `--rescore` takes these from the one it
hears again."""


def earlier_evaluation(cfg: EvalConfig) -> dict:
    """The eval.json `cfg.rescore` names, read once; writing over it is refused (nothing is
    lost), as is a folder without one."""
    if not cfg.out or Path(cfg.out).resolve() == Path(cfg.rescore).resolve():
        raise ValueError(f"--rescore {cfg.rescore}: give --out another folder (the earlier "
                         "evaluation is kept as it is)")
    path = Path(cfg.rescore) / "eval.json"
    if not path.is_file():
        raise ValueError(f"--rescore {cfg.rescore}: no eval.json there; give the folder an "
                         "earlier `python -m interp.models.evaluate --out` wrote")
    return json.loads(path.read_text())


def rescore_config(cfg: EvalConfig, earlier: dict) -> EvalConfig:
    """`cfg` with the model, corpus, plan and sampling of the `earlier` evaluation
    (`PLAN_FIELDS`); its own out, ears and baseline."""
    return replace(cfg, **{k: earlier["config"][k] for k in PLAN_FIELDS if k in earlier["config"]})


def saved_outputs(cfg: EvalConfig, earlier: dict, plan: list[tuple]) -> list[dict[str, list[int]]]:
    """Each plan item's speech tokens from the `earlier` evaluation of the same plan
    (`--rescore`); refused in one line when it has none or another plan."""
    samples = earlier["samples"]
    if any("speech_tokens" not in s for s in samples):
        raise ValueError(f"--rescore {cfg.rescore}: its eval.json keeps no speech tokens (made "
                         "before they were kept); evaluate the model again instead")
    if [(s["text"], s["voice"]) for s in samples] != [p[:2] for p in plan]:
        raise ValueError(f"--rescore {cfg.rescore}: its sentences and voices are not those its "
                         "plan gives now (has the corpus or the model's prompt bank changed?); "
                         "evaluate the model again instead")
    return [s["speech_tokens"] for s in samples]


def renders_alike(engine: Backbone, codec_dir: str):  # noqa: ANN201 (a SpeechCodec)
    """The codec in `codec_dir` when its code book is the model's own (only the decoding may
    differ); refused in one line otherwise."""
    from interp.audio.codec import SpeechCodec

    codec, own = SpeechCodec.load(codec_dir), getattr(engine, "codec", None)
    if own is None or not codec.same_code_book(own):
        raise ValueError(f"--codec {codec_dir}: its code book is not the one {engine.spec}'s "
                         "speech tokens come from; name a codec made from that one (`python -m "
                         "interp.audio fit-decoder --codec` the model's codec)")
    return codec


PARTIAL = "items.partial.jsonl"
"""Each plan item's record as it is finished (after a first line with the settings they depend
on): what a killed evaluation resumes from; removed once eval.json is written."""

_NOT_ITEM_SETTINGS = ("out", "baseline", "examples", "n_conditioning", "n_reference")
"""Settings that change no item's record (only the figures over them, or the files beside)."""


def _item_config(cfg: EvalConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in _NOT_ITEM_SETTINGS}


def resumed_items(out: Path, cfg: EvalConfig, plan: list[tuple]) -> list[dict]:
    """The records of the plan's first items that an interrupted evaluation into `out` finished
    (`PARTIAL`), when it had the same settings; a half-written last line is dropped. Another
    evaluation's items are refused in one line, not mixed in."""
    path = out / PARTIAL
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # killed mid-write: that item is made again
    if not records or records[0].get("config") != _item_config(cfg):
        raise ValueError(f"{path}: items of an evaluation with other settings; give another "
                         "--out, or delete the file to start this one afresh")
    rows = records[1:]
    if [(r["text"], r["voice"]) for r in rows] != [p[:2] for p in plan[:len(rows)]]:
        raise ValueError(f"{path}: its sentences and voices are not this plan's (has the "
                         "corpus or the prompt bank changed?); delete it to start afresh")
    if len(records) < len(lines):  # rewrite without the broken line, so appends stay parseable
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    logging.getLogger(__name__).info("resuming: %d of %d items done in %s", len(rows),
                                     len(plan), path)
    return rows


def evaluate_tts(cfg: EvalConfig) -> dict:
    earlier = earlier_evaluation(cfg) if cfg.rescore else None
    if earlier is not None:
        cfg = rescore_config(cfg, earlier)
    if cfg.instruments:
        from interp.instruments.common import use_instruments

        use_instruments(cfg.instruments)
    engine = load_backbone(cfg.model)
    if why := engine.render_missing():
        raise ValueError(f"cannot evaluate {cfg.model}: {why}")
    if cfg.codec:
        engine.codec = renders_alike(engine, cfg.codec)
    tokens = Path(cfg.tokens) if cfg.tokens else Path(cfg.corpus).parent / "tokens"
    if (tokens / "manifest.json").exists():  # before generating: another codec's tokens are refused
        engine.check_tokens(tokens, Path(cfg.corpus))
    plan = heldout_plan(cfg, engine)
    baseline = load_baseline(Path(cfg.baseline), plan) if cfg.baseline else None
    listen = Listener(Path(cfg.corpus), getattr(engine, "codec", None), cfg.asr)
    out = Path(cfg.out) if cfg.out else Path(getattr(engine, "folder", None) or "runs/eval")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(cfg.seed)
    fingerprints: dict[str, list[float] | None] = {}
    saved = saved_outputs(cfg, earlier, plan) if earlier is not None else None
    rows = resumed_items(out, cfg, plan)
    if not (out / PARTIAL).is_file():
        (out / PARTIAL).write_text(json.dumps({"config": _item_config(cfg)}) + "\n")
    with (out / PARTIAL).open("a") as log, stop_requests() as stop:
        for i, item in enumerate(tqdm(plan, desc="rescore" if saved is not None else "generate",
                                      initial=len(rows))):
            if i < len(rows):  # done before: draw its tag place as generating it did
                tag_place(item[0], rng)
                continue
            if stop.requested:
                raise StageInterrupted(f"{i} of {len(plan)} items kept in {out / PARTIAL}; "
                                       "run the same command again to resume")
            # the earlier outputs, heard again (e.g. by other ears), or new ones generated
            row = (measure(engine, listen, cfg, i, item, saved[i], out, fingerprints)
                   if saved is not None else speak(engine, listen, cfg, i, item, rng, out,
                                                   fingerprints))
            log.write(json.dumps(row) + "\n")
            log.flush()
            rows.append(row)
    table = corpus_tokens(Path(cfg.corpus), tokens)
    train_words = {w for r in load_table(cfg.corpus, "train") for w in _words(r["text_plain"])}

    def figures(domain: str) -> dict:
        mine = [r for r in rows if in_domain(r, domain)]
        refs = [p[3] for p in plan if in_domain(p[3], domain)]
        return summarize(mine, train_words) | {
            "voices_reference_wer": voices_reference_wer(
                cfg.corpus, {r["voice"] for r in mine}, listen, engine, cfg.n_reference,
                domain=domain),
            "teacher_forced": teacher_forced(engine, listen, *table, refs) if table else None,
            "text_conditioning_nats": text_conditioning(engine, *table, cfg.n_conditioning,
                                                        domain) if table else None}

    result = figures(cfg.domain) | {
        "attention_alignment": text_alignment(engine, *table, cfg.n_conditioning,
                                              cfg.domain) if table else None,
        "measured_with": listen.kind, "config": asdict(cfg)}
    if cfg.domain == "both":
        result["by_domain"] = {d: figures(d) for d in EVAL_DOMAINS[:-1]}
    if baseline is not None:
        result["vs_baseline"] = compare(baseline, rows) | {"baseline": cfg.baseline}
        if cfg.domain == "both":  # open sentences paired on the decode that can spell them
            def pair(d: str) -> dict:
                old = [b for b in baseline if in_domain(b, d)]
                new = [r for r in rows if in_domain(r, d)]
                key = "wer" if d == "grammar" else next(
                    (k for k in ("wer_open", "wer_greedy")
                     if all(x.get(k) is not None for x in old + new)), "wer_greedy")
                return compare(old, new, key=key)
            result["vs_baseline_by_domain"] = {d: pair(d) for d in EVAL_DOMAINS[:-1]}
    (out / "eval.json").write_text(json.dumps(result | {"samples": rows}, indent=1))
    (out / PARTIAL).unlink()  # eval.json has every item now
    return result


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def slot_words() -> set[str]:
    """Words that only the grammar's slots put in a sentence (nouns, names, places, …): the
    content a sentence carries, as opposed to its template's fixed words."""
    fixed = {w for t in TEMPLATES for w in _words(re.sub(r"\{\w+\}", " ", t))}
    return {w for fill in lexicon().values() for phrase in fill for w in _words(phrase)} - fixed


def word_recall(rows: list[dict], train_words: set[str] | None = None) -> dict:
    """Share of the sentence's words found in the transcript (bag of words, each heard word used
    once). Grammar sentences: split into template words and slot words (`slot_words`): a model
    that coasts on the grammar says the former and swaps the latter. Open-domain sentences (when
    there are any): into words `train_words` has (the corpus's training sentences) and words it
    lacks, `unseen` (the held-out words), with the open-vocabulary transcript where the recogniser
    has a word list, else the greedy one: the lexicon decode cannot spell a word outside its
    lexicon."""
    slot = slot_words()
    hits: dict[str, list[bool]] = {"template": [], "slot": []}
    if any(r.get("domain") == "open" for r in rows):
        hits |= {"seen": [], "unseen": []}
    for r in rows:
        is_open = r.get("domain") == "open"
        transcript = (r.get("transcript_open") or r.get("transcript_greedy") if is_open
                      else r.get("transcript"))
        if transcript is None:
            continue
        heard = Counter(_words(transcript))
        for w in _words(r["text"]):
            if is_open:
                kind = "seen" if w in (train_words or set()) else "unseen"
            else:
                is_slot = w in slot or (w.endswith("s") and w[:-1] in slot)  # "{noun}s"
                kind = "slot" if is_slot else "template"
            hits[kind].append(heard[w] > 0)
            heard[w] -= heard[w] > 0
    return {k: round(float(np.mean(v)), 4) if v else None for k, v in hits.items()} | {
        f"n_{k}": len(v) for k, v in hits.items()}


def summarize(rows: list[dict], train_words: set[str] | None = None) -> dict:
    """The plan's figures (`train_words`: for `word_recall` on open-domain sentences)."""
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
        # the same with the greedy (open-vocabulary) decode
        "wer_greedy": _mean(rows, "wer_greedy"),
        "wer_espeak_reference_greedy": _mean(rows, "wer_reference_greedy"),
        "wer_roundtrip_reference_greedy": _mean(rows, "wer_roundtrip_reference_greedy"),
        # ... and with the open-vocabulary one (a recogniser with a word list; else None)
        "wer_open": _mean(rows, "wer_open"),
        "wer_espeak_reference_open": _mean(rows, "wer_reference_open"),
        "wer_roundtrip_reference_open": _mean(rows, "wer_roundtrip_reference_open"),
        "word_recall": word_recall(rows, train_words),
        "goals": {"gender_agreement": ">= 0.95", "slow_over_fast": ">= 1.8",
                  "laughter_with_tag": ">= 0.90", "laughter_without_tag": "<= 0.05",
                  "wer - wer_espeak_reference": "<= 0.15",
                  "open domain (issue 34)": {"wer": "<= 0.25", "wer_espeak_reference": "<= 0.05"}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.models.evaluate", description=__doc__)
    add_config_args(parser, EvalConfig)
    r = evaluate_tts(config_from_args(EvalConfig, parser.parse_args()))
    print_summary(r)


if __name__ == "__main__":
    run_cli(main)
