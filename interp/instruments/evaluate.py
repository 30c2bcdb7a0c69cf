"""`python -m interp.instruments.evaluate`: the recogniser's WER on held-out voices, on grammar
sentences and on open-domain English (`open_speech`), original audio and codec round trips, for
every decode (greedy, grammar lexicon, word list, open).

The grammar figures alone flatter the recogniser: its lexicon can only output grammar words. The
open-domain set (sentences and voices it never heard) says what a user's first sentence gets.
`--write-card` stores the figures in the recogniser's card under `open_domain_eval`, with the
command, beside the figures of earlier evaluations.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from interp.audio import SAMPLE_RATE
from interp.audio.codec import SpeechCodec
from interp.cli import add_config_args, config_from_args, run_cli
from interp.instruments import asr
from interp.instruments.common import (
    CARD,
    command_line,
    git_revision,
    instrument_dir,
    prepare_audio,
    read_card,
    set_threads,
    write_json,
)
from interp.instruments.ctc_open import OpenBeamConfig
from interp.instruments.data import RoundTripCache, default_cache_dir, eval_clips
from interp.instruments.open_text import is_conversational
from interp.instruments.text import corpus_error_rates, normalize_text

SECTION = "open_domain_eval"
DECODES = (("greedy", None), ("grammar_lexicon", "lexicon_corrected"), ("wordlist", "wordlist"),
           ("open", "open"))


@dataclass(frozen=True)
class AsrEvalConfig:
    """Which recogniser to measure, on what."""

    asr: str = ""
    """recogniser folder (default data/instruments/asr)"""
    corpus: str = "runs/tinycosy/corpus"
    """grammar corpus (its heldout_voices split)"""
    open_speech: str = "runs/tinycosy/open_speech"
    """open-domain speech folder (`python -m interp.instruments.open_speech`)"""
    codec: str = "data/codec"
    """codec folder (round trips)"""
    split: str = "heldout_voices"
    """split of both sets to measure (dev: the open set's tuning split)"""
    n_grammar: int = 300
    """grammar utterances, original audio (0 = all)"""
    n_grammar_roundtrip: int = 128
    """grammar utterances after the round trip"""
    n_open: int = 0
    """open-domain utterances, original audio (0 = all)"""
    n_open_roundtrip: int = 60
    """open-domain utterances after the round trip"""
    write_card: bool = False
    """store the figures in the recogniser's card.json (section open_domain_eval)"""
    tune: bool = False
    """instead: grid-search the open decode's prior weights on the open set's `dev` split
    (original audio) and print the best settings"""
    keep_best: bool = False
    """with --tune: store the best settings in the recogniser's folder (open_decode.json), which
    every later load of it decodes with"""
    threads: int = 1
    """torch threads (the machine is shared)"""


def open_cache_dir(open_speech: str | Path) -> Path:
    """Round trips of an open-speech folder live inside it (the grammar corpus's cache sits
    beside the corpus, where the same shard names would collide)."""
    return Path(open_speech) / "roundtrip"


def measure_set(rec: asr.Recognizer, corpus: str | Path, cache: RoundTripCache, split: str,
                n: int, n_rt: int, by_kind: bool = False) -> dict:
    """Every decode's figures on the split's original audio and round trips; `by_kind` adds
    them for the conversational and the encyclopedic (Markov) sentences apart."""
    out = {}
    for key, clips in zip(("original", "roundtrip"), eval_clips(corpus, cache, split, n, n_rt),
                          strict=True):
        if not clips:
            continue
        reads = [rec.readings(a, wordlist=True) for a, _ in tqdm(clips, desc=f"asr {key}",
                                                                 leave=False)]
        refs = [r["text_plain"] for _, r in clips]
        out[key] = asr.score_readings(refs, reads, rec.lexicon is not None)
        if by_kind:
            conv = [is_conversational(t) for t in refs]
            for kind, want in (("conversational", True), ("encyclopedic", False)):
                idx = [i for i, c in enumerate(conv) if c == want]
                if idx:
                    out[f"{key}_{kind}"] = asr.score_readings(
                        [refs[i] for i in idx], [reads[i] for i in idx],
                        rec.lexicon is not None, n_examples=3)
    return out


def measure(rec: asr.Recognizer, cfg: AsrEvalConfig, codec: SpeechCodec) -> dict:
    """{grammar, open_domain} × {original, roundtrip} figures of one recogniser."""
    out = {}
    if cfg.n_grammar >= 0:
        cache = RoundTripCache(Path(cfg.corpus), codec, default_cache_dir(cfg.corpus))
        out["grammar"] = measure_set(rec, cfg.corpus, cache, cfg.split, cfg.n_grammar,
                                     cfg.n_grammar_roundtrip)
    cache = RoundTripCache(Path(cfg.open_speech), codec, open_cache_dir(cfg.open_speech))
    out["open_domain"] = measure_set(rec, cfg.open_speech, cache, cfg.split, cfg.n_open,
                                     cfg.n_open_roundtrip, by_kind=True)
    return out


def wer_table(figures: dict) -> dict[str, dict[str, float | None]]:
    """'set audio' → decode → WER: the figures that matter, flat."""
    rows = {}
    for name, sets in figures.items():
        for audio, f in sets.items():
            rows[f"{name} {audio} (n {f['n']})"] = {
                d: (f["wer"] if key is None else f.get(key, {}).get("wer")) for d, key in DECODES}
    return rows


def run_eval(cfg: AsrEvalConfig) -> dict:
    """Measure, optionally write the card section; returns the section."""
    set_threads(cfg.threads)
    folder = instrument_dir(asr.NAME, cfg.asr or None)
    rec = asr.Recognizer.load(folder)
    figures = measure(rec, cfg, SpeechCodec.load(cfg.codec))
    section = {"command": command_line(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
               "git": git_revision(), "config": asdict(cfg),
               "decode": {"open": asdict(rec.open_cfg),
                          "wordlist_words": len(rec.wordlist) if rec.wordlist else 0},
               "wer": wer_table(figures), **figures}
    if cfg.write_card:
        card = read_card(folder)
        card[SECTION] = section
        write_json(folder / CARD, card)
    return section


TUNE_GRID = {"lm_weight": (0.25, 0.5, 0.8, 1.2, 1.6), "word_bonus": (-1.0, 0.0, 1.0, 2.0),
             "oov_letter_logp": (-2.5, -4.0)}


def tune_open(rec: asr.Recognizer, clips: list[tuple[np.ndarray, dict]],
              grid: dict[str, tuple[float, ...]] = TUNE_GRID) -> list[tuple[float, dict]]:
    """(open-decode WER, settings) for every point of `grid` on `clips`, best first; the
    recogniser's forward pass runs once per clip."""
    if rec.wordlist is None:
        raise ValueError("the recogniser has no word list (wordlist.tsv): nothing to tune")
    lps = [rec.log_probs(prepare_audio(a, SAMPLE_RATE)[0]) for a, _ in clips]
    refs = [normalize_text(r["text_plain"]) for _, r in clips]
    words, default = rec.wordlist, rec.open_cfg
    out = []
    try:
        for values in itertools.product(*grid.values()):
            # through the recogniser's own open decode (setting the list rebuilds it with these
            # weights): a phoneme recogniser searches spellings and reads them back as words
            rec.open_cfg = replace(default, **dict(zip(grid, values, strict=True)))
            rec.wordlist = words
            hyps = [rec.read_open(parts) for parts in lps]
            out.append((corpus_error_rates(refs, hyps)["wer"], asdict(rec.open_cfg)))
    finally:
        rec.open_cfg, rec.wordlist = default, words
    return sorted(out, key=lambda t: t[0])


def run_tune(cfg: AsrEvalConfig) -> list[tuple[float, dict]]:
    set_threads(cfg.threads)
    rec = asr.Recognizer.load(instrument_dir(asr.NAME, cfg.asr or None))
    cache = RoundTripCache(Path(cfg.open_speech), SpeechCodec.load(cfg.codec),
                           open_cache_dir(cfg.open_speech))
    clips, _ = eval_clips(cfg.open_speech, cache, "dev", cfg.n_open, 0)
    return tune_open(rec, clips)


def keep_best(folder: str, settings: dict) -> Path:
    """Store tuned open-decode `settings` in the recogniser `folder` (asr.OPEN_DECODE)."""
    if not folder:
        raise ValueError("--keep-best writes into the recogniser's folder: give it with --asr DIR "
                         "(the shipped one is rebuilt by its command, not tuned in place)")
    return asr.write_open_decode(folder, OpenBeamConfig(**settings))


def format_table(section: dict) -> str:
    names = [d for d, _ in DECODES]
    lines = [f"{'WER':46s}" + "".join(f"{n:>16s}" for n in names)]
    for row, vals in section["wer"].items():
        lines.append(f"{row:46s}" + "".join(
            f"{'-' if vals[n] is None else format(vals[n], '.3f'):>16s}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m interp.instruments.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, AsrEvalConfig)
    cfg = config_from_args(AsrEvalConfig, p.parse_args(argv))
    if cfg.tune:
        ranked = run_tune(cfg)
        keys = list(TUNE_GRID)
        print(f"open-decode WER on dev (n {cfg.n_open or 'all'}), best first; default "
              f"{ {k: getattr(OpenBeamConfig(), k) for k in keys} }")
        for w, c in ranked[:10]:
            print(f"  {w:.4f}  " + "  ".join(f"{k} {c[k]}" for k in keys))
        if cfg.keep_best:
            path = keep_best(cfg.asr, ranked[0][1])
            print(f"kept the best settings for {cfg.asr}: {path}")
        return
    print(format_table(run_eval(cfg)))


if __name__ == "__main__":
    run_cli(main)
