"""`python -m interp.instruments.train gender|laughter|asr`: train an instrument on the corpus,
evaluate it on held-out voices (original audio and codec round trips) and write its card.

Output folder (default data/instruments/<name>/): the weights, `card.json` (training data,
held-out figures, limits, the command that made it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.audio.codec import SpeechCodec
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import load_table
from interp.instruments import asr, gender, laughter
from interp.instruments.calibration import fit_temperature
from interp.instruments.common import (
    CARD,
    command_line,
    git_revision,
    instrument_dir,
    read_card,
    seed_everything,
    set_threads,
    write_json,
)
from interp.instruments.ctc_open import WordList
from interp.instruments.ctc_phonemes import Pronunciations
from interp.instruments.data import ClipPool, RoundTripCache, default_cache_dir, eval_clips
from interp.instruments.evaluate import SECTION, AsrEvalConfig, open_cache_dir, run_eval
from interp.instruments.text import Lexicon, normalize_text

logger = logging.getLogger(__name__)

LIMITS_SYNTHETIC = (
    "Trained and evaluated only on synthetic espeak-ng voices (72 voices, 6 English accents) and "
    "their 25 Hz codec round trips; untested on natural speech, music or other codecs.")


@dataclass(frozen=True)
class TrainJob:
    """Where an instrument learns from and is written to; its hyper-parameters are the second
    config (GenderConfig, LaughterConfig, AsrConfig), the one its card records."""

    corpus: str = "runs/tinycosy/corpus"
    """corpus folder"""
    codec: str = "data/codec"
    """codec folder (for round trips)"""
    out: str | None = None
    """output folder (default data/instruments/<name>)"""
    roundtrip_cache: str = ""
    """round-trip cache folder (empty: <corpus>/../instruments/roundtrip)"""
    threads: int = 1
    """torch threads (machine is shared)"""
    extra_corpus: str = ""
    """asr only: a second corpus folder whose train split is mixed in (e.g. open-domain speech
    from `python -m interp.instruments.open_speech`; its round trips are cached inside it), and
    whose heldout_voices split is measured with every decode (card: open_domain_eval)"""


def setup(job: TrainJob, seed: int) -> tuple[Path, RoundTripCache]:
    set_threads(job.threads)
    seed_everything(seed)
    corpus = Path(job.corpus)
    codec = SpeechCodec.load(job.codec)
    cache_dir = Path(job.roundtrip_cache) if job.roundtrip_cache else default_cache_dir(corpus)
    return corpus, RoundTripCache(corpus, codec, cache_dir, seed=0)


def card_base(name: str, job: TrainJob, cfg: Any, history: dict, n_params: int) -> dict:
    return {"instrument": name, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": command_line(), "git": git_revision(),
            "config": dataclasses.asdict(cfg),
            "parameters": n_params,
            "training_run": {**history, "threads": job.threads, "torch": torch.__version__,
                             "machine": platform.machine()},
            "corpus": str(job.corpus), "codec": str(job.codec)}


def run_gender(job: TrainJob, cfg: gender.GenderConfig | None = None) -> dict:
    """Train, calibrate and evaluate the gender classifier; writes its weights and card."""
    cfg = cfg or gender.GenderConfig()
    corpus, cache = setup(job, cfg.seed)
    out = instrument_dir(gender.NAME, job.out)
    train_rows = load_table(corpus, "train")
    rt_rows, rt = cache.get("train", cfg.n_roundtrip)
    pool = ClipPool(corpus, train_rows, rt, cfg.roundtrip_frac)
    clf = gender.new_classifier(cfg)
    history = gender.train(clf, pool, cfg)

    half = cfg.n_calibration // 2
    cal_o, cal_rt = eval_clips(corpus, cache, "heldout_sentences", half, half)
    if cal_o or cal_rt:
        z, y, _ = gender.score(clf, cal_o + cal_rt)
        clf.temperature = fit_temperature(z, y)
    test_o, test_rt = eval_clips(corpus, cache, "heldout_voices", cfg.n_eval, cfg.n_eval_roundtrip)
    heldout = {}
    for key, clips in (("original", test_o), ("roundtrip", test_rt)):
        if clips:
            heldout[key] = gender.figures(*gender.score(clf, clips), clf.temperature)
    clf.save(out)
    n_params = sum(p.numel() for p in clf.model.parameters())
    card = card_base(gender.NAME, job, cfg, history, n_params)
    card.update({
        "model": "transformers Wav2Vec2ForSequenceClassification (from scratch), labels "
                 "female/male; P(male) = sigmoid(male log-odds / temperature)",
        "output": "p_male in [0, 1]",
        "training_data": {"split": "train", "utterances": len(train_rows),
                          "roundtrip_utterances": len(rt_rows),
                          "roundtrip_share": cfg.roundtrip_frac, "crop_s": cfg.crop_s,
                          "augmentation": "gain ±6 dB, white noise (SNR 15–40 dB) half the time, "
                                          "speed ±5%"},
        "calibration": {"temperature": round(clf.temperature, 4),
                        "fit_on": f"heldout_sentences: {len(cal_o)} original + {len(cal_rt)} "
                                  "round-trip utterances",
                        "note": "T is searched in [1, 20] (never sharpen): on a separable "
                                "calibration set the NLL-optimal T tends to 0"},
        "heldout_voices": heldout,
        "goals": {"accuracy": ">= 0.98 on heldout_voices"},
        "limits": [LIMITS_SYNTHETIC,
                   "Gender labels are espeak variants (m1–m7 male, f1–f5 female); the model "
                   "likely leans on pitch and formant scale, so a very low female or very high "
                   "male voice may be misread.",
                   "Evaluated on whole utterances (1–8 s); clips under ~0.5 s are unreliable.",
                   "Outputs are near 0 or 1 on corpus speech; on non-speech they are meaningless "
                   "(measure() reports p_male = None when silero-vad finds no speech)."]})
    write_json(out / CARD, card)
    return card


def run_laughter(job: TrainJob, cfg: laughter.LaughterConfig | None = None) -> dict:
    """Train and evaluate the laughter detector; writes its weights and card."""
    cfg = cfg or laughter.LaughterConfig()
    corpus, cache = setup(job, cfg.seed)
    out = instrument_dir(laughter.NAME, job.out)
    train_rows = load_table(corpus, "train")
    rt_rows, rt = cache.get("train", cfg.n_roundtrip)
    det = laughter.new_detector(cfg)
    history = laughter.train(det, ClipPool(corpus, train_rows, rt, cfg.roundtrip_frac), cfg)
    test_o, test_rt = eval_clips(corpus, cache, "heldout_voices", cfg.n_eval, cfg.n_eval_roundtrip)
    heldout = {k: laughter.evaluate(det, c) for k, c in (("original", test_o),
                                                          ("roundtrip", test_rt)) if c}
    non_speech = laughter.non_speech_false_positives(det)
    det.save(out)
    card = card_base(laughter.NAME, job, cfg, history,
                     sum(p.numel() for p in det.net.parameters()))
    n_laugh = sum(any(t["tag"] == "laughter" for t in r["tags"]) for r in train_rows)
    card.update({
        "model": "log-mel (64 bands, 10 ms) → 3 conv blocks pooling to 25 Hz → BiGRU → frame "
                 "logit (plain torch). Chosen because laughter is a spectro-temporal pattern "
                 "(voiced bursts at ~4–5 Hz, breathy onsets) that needs ~1 s of context but no "
                 "linguistic knowledge: a small CRNN learns it in minutes on CPU.",
        "output": "frame probabilities at 25 Hz (frame j ↔ [j/25, (j+1)/25) s); utterance score "
                  f"= max of the {cfg.smooth_frames}-frame moving average; spans = runs above "
                  f"{cfg.threshold} (gaps < 0.2 s merged, runs < 0.12 s dropped)",
        "training_data": {"split": "train", "utterances": len(train_rows),
                          "with_laughter": n_laugh, "roundtrip_utterances": len(rt_rows),
                          "roundtrip_share": cfg.roundtrip_frac,
                          "laughter_share": cfg.laughter_share, "crop_s": cfg.crop_s,
                          "labels": "frame = 1 when its centre lies in a [laughter] span; speech, "
                                    "silence and [breath] are 0",
                          "augmentation": "gain ±6 dB, white noise (SNR 15–40 dB) half the time, "
                                          "speed ±10%",
                          "distractors": f"{cfg.distractor_frac:.0%} of clips are non-speech "
                                         "(noise, noise bursts, tones, silence), all frames 0"},
        "heldout_voices": heldout,
        "non_speech": {**non_speech, "clips": "3 s of white/pink/brown noise, noise pulsed at "
                                              "3–7 Hz, steady or pulsed tones, near-silence"},
        "goals": {"utterance_accuracy": ">= 0.95", "span_f1": ">= 0.8 on heldout_voices"},
        "limits": [LIMITS_SYNTHETIC,
                   "Laughter here is the corpus's source–filter 'ha' bursts in the speaker's own "
                   "voice; real laughter (giggles, snorts, laughing while speaking) is unseen.",
                   "Span F1 counts a predicted span as right when its IoU with a true span is "
                   ">= 0.5 (one-to-one).",
                   "The non-speech check draws from the same generator family as the training "
                   "distractors (other seeds), so it is optimistic about unseen noises."]})
    write_json(out / CARD, card)
    return card


ASR_MODEL_TEXT = (
    "transformers Wav2Vec2ForCTC (from scratch) fed log-mel instead of the waveform, through the "
    "unchanged class: input_values = per-utterance-normalised 80-band log-mel at 100 Hz, "
    "flattened frame by frame (frontend.json); conv 1 (kernel = stride = 80) reads one frame, "
    "conv 2 (kernel 3, stride 2) → 50 Hz; pre-LN transformer; character CTC head; greedy "
    "decoding. Log-mel because a raw-waveform conv stack from scratch was still on the blank "
    "plateau (CER 0.98) after 300 steps, where log-mel reached CER 0.51.")


ASR_OUTPUT_TEXT = (
    "lower-case transcript (letters, apostrophe, spaces) by greedy CTC; `lexicon_corrected` "
    "figures decode the same CTC output by a lexicon-constrained beam search over the train "
    "split's words (lexicon.txt; interp.instruments.ctc_lexicon), snapping the greedy words instead "
    "where no all-known-words reading fits; `open` / `wordlist` figures (open_domain_eval) decode "
    "it by a prefix beam search over wordlist.tsv with a unigram prior, spelling unlisted words "
    "(open) or not (wordlist; interp.instruments.ctc_open). WER = word Levenshtein / reference "
    "words after "
    "normalisation, corpus-level; `shuffled_reference_wer` scores the same transcripts against "
    "another clip's text (the chance level).")


def _asr_heldout(rec: asr.Recognizer, corpus: Path, cache: RoundTripCache,
                 cfg: asr.AsrConfig) -> dict:
    """The recogniser's figures on heldout_voices, original audio and codec round trips."""
    test_o, test_rt = eval_clips(corpus, cache, "heldout_voices", cfg.n_eval, cfg.n_eval_roundtrip)
    return {k: asr.evaluate(rec, c) for k, c in (("original", test_o), ("roundtrip", test_rt)) if c}


def evaluate_asr(job: TrainJob, cfg: asr.AsrConfig | None = None) -> dict:
    """Re-measure a trained recogniser's held-out figures in place (e.g. after a decoding
    change), keeping its training record; the card says when and at which revision."""
    cfg = cfg or asr.AsrConfig()
    corpus, cache = setup(job, cfg.seed)
    out = instrument_dir(asr.NAME, job.out)
    rec, card = asr.Recognizer.load(out), read_card(out)
    card["heldout_voices"] = _asr_heldout(rec, corpus, cache, cfg)
    card["output"] = ASR_OUTPUT_TEXT
    card["reevaluated"] = {"command": command_line(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "git": git_revision()}
    write_json(out / CARD, card)
    return card


def grammar_lexicon(rows: list[dict], known: list[str] | tuple[str, ...] = ()) -> Lexicon:
    """The lexicon decode's words: those of the grammar rows (all rows when none is marked
    grammar), plus `known` ones. Open-domain rows of a broadened corpus train the acoustics, but
    their words would loosen the grammar decode; the open decode has its own word list."""
    grammar = [r for r in rows if r.get("domain") in ("grammar", None)] or rows
    return Lexicon([w for r in grammar for w in normalize_text(r["text_plain"]).split()]
                   + list(known))


def phoneme_table(cfg: asr.AsrConfig, rows: list[dict],
                  extra: ClipPool | None) -> Pronunciations | None:
    """A phoneme recogniser's pronunciations (None for letters): the word list's words and every
    word of the training sentences (grammar and `extra`), in the forms espeak-ng says them."""
    if cfg.units != "phonemes":
        return None
    words = WordList.from_wordfreq(cfg.wordlist_size or 50_000)
    texts = [r["text_plain"] for r in rows + (extra.rows if extra else [])]
    return Pronunciations.build(words, texts)


def run_asr(job: TrainJob, cfg: asr.AsrConfig | None = None) -> dict:
    """Train (or continue `cfg.init_from`) and evaluate the recogniser; writes weights and card."""
    cfg = cfg or asr.AsrConfig()
    corpus, cache = setup(job, cfg.seed)
    out = instrument_dir(asr.NAME, job.out)
    train_rows = load_table(corpus, "train")
    rt_rows, rt = cache.get("train", cfg.n_roundtrip)
    extra = extra_pool(job, cache.codec, cfg)
    if cfg.init_from:
        rec = asr.Recognizer.load(cfg.init_from)
        if cfg.units == "phonemes" and rec.phonemes is None:  # its ears kept, a new head
            rec = asr.with_phoneme_head(rec, phoneme_table(cfg, train_rows, extra), out)
    else:
        rec = asr.new_recognizer(cfg, out, phoneme_table(cfg, train_rows, extra))
    known = rec.lexicon.words if rec.lexicon is not None else []  # a continued run keeps its words
    if rec.wordlist is None and cfg.wordlist_size > 0:
        rec.wordlist = WordList.from_wordfreq(cfg.wordlist_size)
    rec.lexicon = grammar_lexicon(train_rows, known)
    history = asr.train(rec, ClipPool(corpus, train_rows, rt, cfg.roundtrip_frac), cfg, extra)
    heldout = _asr_heldout(rec, corpus, cache, cfg)
    rec.save(out)
    card = card_base(asr.NAME, job, cfg, history, sum(p.numel() for p in rec.model.parameters()))
    card.update({
        "model": ASR_MODEL_TEXT if cfg.frontend == "logmel" else
                 "transformers Wav2Vec2ForCTC (from scratch) on the 16 kHz waveform (7 narrow "
                 "convolutions → 50 Hz), a small transformer, a character head; greedy CTC.",
        "output": ASR_OUTPUT_TEXT,
        "units": "letters" if rec.phonemes is None else "phonemes (espeak-ng en-us)",
        "vocabulary": list(asr.VOCAB) if rec.phonemes is None else rec.phonemes.units,
        "training_data": {"split": "train", "utterances": len(train_rows),
                          "roundtrip_utterances": len(rt_rows),
                          "roundtrip_share": cfg.roundtrip_frac, "text": "text_plain",
                          "augmentation": "gain ±6 dB, white noise (SNR 15–40 dB) half the time, "
                                          "speed ±10%"
                                          + (", time masking" if cfg.mask_time_prob else ""),
                          **extra_record(job, cfg, extra)},
        "heldout_voices": heldout,
        "goals": {"wer": "<= 0.05 on heldout_voices original audio",
                  "open_domain_wer": "<= 0.05 on open-domain heldout_voices original audio "
                                     "(issue 34)"},
        "limits": [LIMITS_SYNTHETIC,
                   vocabulary_limit(train_rows, extra),
                   "Trained for a fixed CPU budget (one thread, --max-minutes): far from "
                   "converged; see the loss curve.",
                   "Non-verbal sounds ([laughter], [breath]) are not transcribed."]})
    if cfg.init_from:
        prev = read_card(Path(cfg.init_from))
        card["continued_from"] = {k: prev.get(k) for k in ("command", "created", "training_run",
                                                          "heldout_voices", "continued_from")
                                  if prev.get(k)}
        card["training_run"]["total_steps"] = card["training_run"]["steps"] + sum(
            c.get("training_run", {}).get("total_steps", c.get("training_run", {}).get("steps", 0))
            for c in [prev])
    write_json(out / CARD, card)
    if job.extra_corpus:  # every decode on grammar and open-domain held-out voices
        card[SECTION] = run_eval(AsrEvalConfig(
            asr=str(out), corpus=job.corpus, open_speech=job.extra_corpus, codec=job.codec,
            n_grammar=cfg.n_eval or 300, n_grammar_roundtrip=min(128, cfg.n_eval_roundtrip),
            write_card=True, threads=job.threads))
    return card


def vocabulary_limit(train_rows: list[dict], extra: ClipPool | None) -> str:
    """The card's sentence on what the recogniser heard and what its decodes can output."""
    n = len({w for r in train_rows for w in normalize_text(r["text_plain"]).split()})
    grammar = (f"The grammar corpus has {n} distinct words in its train split; grammar-lexicon "
               "decoding (`transcript_corrected`) can only ever output those words (it can hide a "
               "mispronunciation that lands near another known word).")
    if extra is None:
        return grammar + (" Words outside it are rarely spelt right; the greedy and open "
                          "(word-list) transcripts are reported beside it.")
    m = len({w for r in extra.rows for w in normalize_text(r["text_plain"]).split()})
    return grammar + (f" The open-domain speech mixed in has {m} distinct words; the open "
                      "decode's prior is unigram word frequency only (no bigram model).")


def extra_record(job: TrainJob, cfg: asr.AsrConfig, extra: ClipPool | None) -> dict:
    """The card's record of the mixed-in corpus (empty without one)."""
    if extra is None:
        return {}
    return {"extra_corpus": job.extra_corpus, "extra_utterances": len(extra.rows),
            "extra_roundtrip_utterances": len(extra.rt_rows), "extra_share": cfg.extra_share}


def extra_pool(job: TrainJob, codec: SpeechCodec, cfg: asr.AsrConfig) -> ClipPool | None:
    """The --extra-corpus train split (with its cached round trips) as a second clip pool."""
    if not job.extra_corpus:
        return None
    folder = Path(job.extra_corpus)
    rows = load_table(folder, "train")
    rt_rows, rt = RoundTripCache(folder, codec, open_cache_dir(folder)).get(
        "train", cfg.n_extra_roundtrip)
    return ClipPool(folder, rows, rt, cfg.roundtrip_frac)


def summary(card: dict) -> str:
    lines = [f"{card['instrument']}: {card['parameters']:,} parameters, "
             f"{card['training_run']['steps']} steps in {card['training_run']['wall_s']:.0f} s "
             f"(final loss {card['training_run']['final_loss']})"]
    for split in ("heldout_voices",):
        for key, f in card.get(split, {}).items():
            shown = {k: v for k, v in f.items() if not isinstance(v, (dict, list))}
            shown.update({f"{k} {m}": v[m] for k, v in f.items() if isinstance(v, dict)
                          for m in ("f1", "wer") if m in v})
            lines.append(f"  {split} {key}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    if "calibration" in card:
        lines.append(f"  temperature {card['calibration']['temperature']}")
    return "\n".join(lines)


RUNNERS = {gender.NAME: (gender.GenderConfig, run_gender),
           laughter.NAME: (laughter.LaughterConfig, run_laughter),
           asr.NAME: (asr.AsrConfig, run_asr)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m interp.instruments.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="instrument", required=True)
    for name, (cls, _) in RUNNERS.items():
        s = sub.add_parser(name, help=f"train the {name} instrument")
        add_config_args(s, TrainJob)
        if name == asr.NAME:
            s.add_argument("--eval-only", action="store_true",
                           help="re-measure the recogniser in --out on held-out voices and update "
                                "its card (no training)")
        add_config_args(s, cls)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cls, runner = RUNNERS[args.instrument]
    if getattr(args, "eval_only", False):
        runner = evaluate_asr
    job = config_from_args(TrainJob, args)
    card = runner(job, config_from_args(cls, args))
    out = instrument_dir(args.instrument, job.out)
    print(summary(card))
    print(f"  → {out}/ (card: {out / CARD})")


if __name__ == "__main__":
    run_cli(main)
