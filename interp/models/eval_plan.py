"""What `interp.models.evaluate` speaks, and pairing it with an earlier evaluation.

The plan: n held-out sentences of the corpus (of one domain, grammar or open, or n of each), each
with one prompt voice of the model's prompt bank (held-out voices, or as many training voices of
each gender: the control) and its espeak reference row. A baseline eval.json is paired sentence by
sentence only when it was made on the same plan.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from interp.corpus.plan import DOMAINS
from interp.corpus.table import load_table
from interp.models.backbone import Backbone
from interp.stats import mean_ci

RATES = {"normal": None, "slow": "Please speak slowly.", "fast": "Please speak quickly."}
EVAL_DOMAINS = (*DOMAINS, "both")


def in_domain(row: dict, domain: str) -> bool:
    """Whether a corpus row belongs to `domain` (grammar, open, or both)."""
    return domain == "both" or row["domain"] == domain


def plan_voices(engine: Backbone, which: str, seed: int) -> list[str]:
    """The prompt voices: the bank's held-out voices, or (`train`) as many training voices of
    each gender, drawn with `seed`."""
    if which not in ("heldout", "train"):
        raise ValueError(f"--voices {which!r}: give heldout or train")
    held = sorted(v for v, p in engine.voices.items() if p["split"] == "heldout_voices")
    if which == "heldout":
        return held
    pick = random.Random(seed)
    voices = []
    for g in sorted({engine.voices[v]["gender"] for v in held}):
        seen = sorted(v for v, p in engine.voices.items()
                      if p["split"] != "heldout_voices" and p["gender"] == g)
        voices += pick.sample(seen, sum(engine.voices[v]["gender"] == g for v in held))
    return sorted(voices)


def plan_sentences(corpus: str | Path, engine: Backbone, n: int, seed: int,
                   voices: str = "heldout", domain: str = "grammar") -> list[tuple[str, str, str, dict]]:
    """(sentence, voice id, voice gender, espeak reference row) for n held-out sentences of
    `domain` (`both`: n grammar then n open ones), voices in turn (`plan_voices`). The grammar
    plan on a grammar-only corpus is the plan evaluations made before domains existed."""
    if domain not in EVAL_DOMAINS:
        raise ValueError(f"--domain {domain!r}: give one of {', '.join(EVAL_DOMAINS)}")
    chosen = plan_voices(engine, voices, seed)
    rows = load_table(corpus, "heldout_voices")  # the sentences, whichever voices speak them
    plan: list[tuple[str, str, str, dict]] = []
    for d in DOMAINS if domain == "both" else (domain,):
        # the espeak rendering of each sentence, one without tags where there is one
        mine = [r for r in rows if r["domain"] == d]
        reference = {r["text_plain"]: r for r in sorted(mine, key=lambda r: -len(r["tags"]))}
        sentences = sorted(reference)
        if not sentences or not chosen:
            raise ValueError(f"no held-out {d} sentences or voices in {corpus}: evaluate on a "
                             "corpus the model's prompt bank matches" + (
                                 "; open sentences need a corpus built with --open-frac > 0"
                                 if d == "open" else ""))
        random.Random(seed).shuffle(sentences)
        plan += [(s, chosen[i % len(chosen)], engine.voices[chosen[i % len(chosen)]]["gender"],
                  reference[s]) for i, s in enumerate(sentences[:n])]
    return plan


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


def load_baseline(path: Path, plan: list[tuple]) -> list[dict]:
    """The baseline's samples, checked before anything is generated to be of the same plan."""
    samples = load_samples(path)
    check_same_plan(samples, [(text, voice) for text, voice, *_ in plan], str(path))
    return samples


def check_same_plan(baseline: list[dict], plan: list[tuple[str, str]], name: str,
                    same_voices: bool = True) -> None:
    """Refuse a baseline made on other sentences (or, with `same_voices`, other voices)."""
    if same_voices and [(b["text"], b["voice"]) for b in baseline] != plan:
        raise ValueError(f"{name} was made on other sentences or voices; evaluate both with the "
                         "same --corpus, --n and --seed")
    if [b["text"] for b in baseline] != [t for t, _ in plan]:
        raise ValueError(f"{name} was made on other sentences; evaluate both with the same "
                         "--corpus, --n and --seed")


def compare(baseline: list[dict], rows: list[dict], same_voices: bool = True,
            key: str = "wer") -> dict:
    """Paired per-sentence differences (new - baseline) of WER (`key`: which decode's) and of
    laughter with the tag, with 95% CIs; the rows must come from the same plan (same sentences
    and, unless `same_voices` is off, voices, in order)."""
    check_same_plan(baseline, [(r["text"], r["voice"]) for r in rows], "the baseline",
                    same_voices)
    pairs = [(b[key], r[key]) for b, r in zip(baseline, rows, strict=True)
             if b.get(key) is not None and r.get(key) is not None]
    return {"wer_key": key,
        "wer_diff": mean_ci([new - old for old, new in pairs]),
        "wer_better_worse_same": [sum(n < o for o, n in pairs), sum(n > o for o, n in pairs),
                                  sum(n == o for o, n in pairs)],
        "laughter_with_tag_diff": mean_ci([float(r["laughter_with_tag"] > 0.5)
                                           - float(b["laughter_with_tag"] > 0.5)
                                           for b, r in zip(baseline, rows, strict=True)]),
    }
