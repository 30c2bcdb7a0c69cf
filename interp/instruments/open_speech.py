"""`python -m interp.instruments.open_speech`: open-domain English rendered by espeak-ng, written
as a corpus folder (same table and wav layout as `interp.corpus`), for the recogniser.

Splits: `train` (train voices; training sentences), `dev` (train voices; other sentences: for
tuning decoding weights) and `heldout_voices` (the grammar corpus's held-out voices; sentences
in neither of the others). Voices come from a built grammar corpus, so "held-out" means the same
voices the recogniser never heard there. Every sentence comes from `open_text` (seeded).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from interp.atomic import atomic_write_text
from interp.audio import SAMPLE_RATE
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.plan import RATE_BINS, UtteranceSpec
from interp.corpus.render import render_utterance
from interp.corpus.table import MANIFEST, TABLE, load_table, write_table
from interp.corpus.voices import Voice, parse_voice
from interp.instruments.open_text import open_sentences
from interp.instruments.text import normalize_text

SPLITS = ("train", "dev", "heldout_voices")


@dataclass(frozen=True)
class OpenSpeechConfig:
    """What open-domain speech to render, and where."""

    corpus: str = "runs/tinycosy/corpus"
    """grammar corpus whose train / heldout_voices voices are used"""
    out: str = "runs/tinycosy/open_speech"
    """output folder (corpus layout: utterances.parquet, wav/, manifest.json)"""
    n_train: int = 3000
    """training utterances (train voices)"""
    n_dev: int = 40
    """dev utterances (train voices, unseen sentences): for tuning decoding weights"""
    n_test: int = 60
    """heldout_voices utterances (held-out voices, unseen sentences)"""
    seed: int = 0
    """seed of sentences, voices and rates"""
    conversational_share: float = 0.2
    """share of everyday questions/greetings among the sentences"""


def corpus_voices(corpus: str | Path) -> dict[str, list[Voice]]:
    """The train and held-out voices of a built grammar corpus."""
    rows = load_table(corpus)
    by_split: dict[str, set[str]] = {"train": set(), "heldout_voices": set()}
    for r in rows:
        if r["split"] in by_split:
            by_split[r["split"]].add(r["voice_id"])
    if not by_split["train"] or not by_split["heldout_voices"]:
        raise ValueError(f"{corpus} needs both a train and a heldout_voices split")
    return {k: [parse_voice(v) for v in sorted(ids)] for k, ids in by_split.items()}


def plan(cfg: OpenSpeechConfig, voices: dict[str, list[Voice]],
         sentences: list[str]) -> list[UtteranceSpec]:
    """One utterance per sentence: split by position, a random voice of that split, a random
    rate of a random rate bin (no instruction: these are read, not instructed)."""
    rng = random.Random(cfg.seed)
    counts = {"train": cfg.n_train, "dev": cfg.n_dev, "heldout_voices": cfg.n_test}
    specs, i = [], 0
    for split in SPLITS:
        pool = voices["heldout_voices" if split == "heldout_voices" else "train"]
        for _ in range(counts[split]):
            rate_bin = rng.choice(list(RATE_BINS))
            specs.append(UtteranceSpec(
                utt_id=f"o{i:06d}", split=split, sentence_id=i, text=sentences[i],
                text_plain=sentences[i], voice=rng.choice(pool),
                rate=rng.randint(*RATE_BINS[rate_bin]), rate_bin=rate_bin, instruction=None))
            i += 1
    return specs


def unseen_word_share(rows: list[dict], train_rows: list[dict]) -> float:
    """Share of the rows' word tokens that never occur in the training rows' text."""
    seen = {w for r in train_rows for w in normalize_text(r["text_plain"]).split()}
    words = [w for r in rows for w in normalize_text(r["text_plain"]).split()]
    return round(sum(w not in seen for w in words) / max(1, len(words)), 4)


def build_open_speech(cfg: OpenSpeechConfig, chain: dict | None = None) -> dict:
    """Render the planned utterances into `cfg.out` (skipped when the same config is done);
    returns the manifest."""
    out = Path(cfg.out)
    path = out / MANIFEST
    if path.exists() and (out / TABLE).exists():
        done = json.loads(path.read_text())
        if done.get("config") == asdict(cfg):
            return done
    start = time.time()
    voices = corpus_voices(cfg.corpus)
    n = cfg.n_train + cfg.n_dev + cfg.n_test
    sentences = open_sentences(n, cfg.seed, chain=chain,
                               conversational_share=cfg.conversational_share)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    records = []
    for spec in tqdm(plan(cfg, voices, sentences), desc="render open speech", unit="utt"):
        audio, rec = render_utterance(spec, SAMPLE_RATE, cfg.seed)
        sf.write(out / rec["path"], audio, SAMPLE_RATE, subtype="PCM_16")
        records.append(rec)
    write_table(records, out / TABLE)
    train = [r for r in records if r["split"] == "train"]
    manifest = {"config": asdict(cfg), "source": "interp.instruments.open_text (essential-"
                "generators Markov chain + conversational templates)",
                "counts": {s: sum(r["split"] == s for r in records) for s in SPLITS},
                "hours": round(sum(r["duration"] for r in records) / 3600, 3),
                "unseen_word_share": {s: unseen_word_share(
                    [r for r in records if r["split"] == s], train) for s in ("dev",
                                                                              "heldout_voices")},
                "build_seconds": round(time.time() - start, 1)}
    atomic_write_text(path, json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m interp.instruments.open_speech", description=__doc__)
    add_config_args(p, OpenSpeechConfig)
    cfg = config_from_args(OpenSpeechConfig, p.parse_args(argv))
    m = build_open_speech(cfg)
    print(f"open speech: {cfg.out}  {m['counts']}  {m['hours']} h; words unseen in train: "
          f"{m['unseen_word_share']}")


if __name__ == "__main__":
    run_cli(main)
