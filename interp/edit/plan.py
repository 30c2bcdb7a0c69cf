"""Edit pairs, decided up front and deterministically from (config, seed).

A pair is one sentence rendered twice by espeak-ng — the *source* and the *target* of an edit —
that differ only in what the instruction asks for:

    gender           same accent, pitch and rate; the variant's gender flipped   (alteration)
    faster / slower  same voice; normal rate → fast / slow rate                  (alteration)
    add_laughter     same voice; target has `[laughter]` after a named word      (addition)
    remove_laughter  same voice; source has a `[laughter]`, target has none      (removal)
    accent           same variant, pitch and rate; another espeak accent         (alteration)

MMAE's operation name and granularity are recorded with each pair. Splits follow the corpus's:
`train` (train voices × train sentences), `heldout_sentences` (train voices × held-out
sentences), `heldout_voices` (held-out voices × held-out sentences; an accent edit's target voice
is a new accent of a held-out speaker, a gender edit's another held-out voice).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from interp.audio import SAMPLE_RATE
from interp.corpus.plan import RATE_BINS, UtteranceSpec, split_voices
from interp.corpus.sentences import generate_sentences
from interp.corpus.voices import Voice, make_voice

SPLITS = ("train", "heldout_sentences", "heldout_voices")
# operation → (MMAE operation, MMAE granularity)
OPERATIONS: dict[str, tuple[str, str]] = {
    "gender": ("alteration", "global"), "faster": ("alteration", "global"),
    "slower": ("alteration", "global"), "add_laughter": ("addition", "local"),
    "remove_laughter": ("removal", "local"), "accent": ("alteration", "global"),
}
ACCENT_NAMES: dict[str, str] = {
    "en-us": "an American", "en-gb": "a British", "en-gb-x-rp": "a Received Pronunciation",
    "en-gb-scotland": "a Scottish", "en-029": "a Caribbean", "en-us-nyc": "a New York",
}
INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "male": ("Make the voice sound male.", "Change the speaker to a man.",
             "Make the speaker sound like a man."),
    "female": ("Make the voice sound female.", "Change the speaker to a woman.",
               "Make the speaker sound like a woman."),
    "faster": ("Speak faster.", "Make the speech faster.", "Speed up the speech."),
    "slower": ("Speak slower.", "Make the speech slower.", "Slow down the speech."),
    "add_laughter": ("Add laughter after the word '{word}'.", "Insert a laugh after '{word}'."),
    "remove_laughter": ("Remove the laughter.", "Take out the laugh."),
    "accent": ("Use {accent} accent.", "Say it with {accent} accent."),
}
VoiceCheck = Callable[[Voice], bool]  # does espeak render this voice as its gender?


@dataclass(frozen=True)
class EditPlanConfig:
    """Size and mixture of the edit-pairs corpus. Fields double as `--help` text."""

    n_pairs: int = 3000
    """number of (source, target) pairs"""
    n_sentences: int = 2000
    """distinct sentences drawn from the corpus grammar"""
    heldout_sentence_frac: float = 0.1
    """fraction of sentences kept out of training"""
    n_heldout_voices: int = 12
    """voices kept out of training (half male, half female)"""
    heldout_frac: float = 0.06
    """fraction of pairs in each held-out split"""
    operations: tuple[str, ...] = tuple(OPERATIONS)
    """edit operations to plan, drawn uniformly"""
    sample_rate: int = SAMPLE_RATE
    """sample rate of the stored audio"""
    seed: int = 0
    """seed of every random choice"""
    voices: tuple[str, ...] = field(default_factory=tuple)
    """source voice ids (accent+variant@pNN); empty = every default accent × variant"""
    disjoint_targets: bool = True
    """an accent edit's target voice never belongs to the other side's voices (train vs
    held-out); off = the plan of the first builds, which let a few targets cross over"""

    def to_dict(self) -> dict:
        return {**asdict(self), "operations": list(self.operations), "voices": list(self.voices)}


@dataclass(frozen=True)
class EditPair:
    """One planned edit: the two utterances to render and the pair's ground truth."""

    pair_id: str
    split: str
    operation: str
    instruction: str
    source: UtteranceSpec
    target: UtteranceSpec
    laughter_word: str = ""  # add_laughter / remove_laughter: the word the laugh follows

    def record(self) -> dict:
        mmae_op, granularity = OPERATIONS[self.operation]
        s, t = self.source, self.target
        return {"pair_id": self.pair_id, "split": self.split, "operation": self.operation,
                "mmae_operation": mmae_op, "granularity": granularity,
                "instruction": self.instruction, "source_id": s.utt_id, "target_id": t.utt_id,
                "sentence_id": s.sentence_id, "text_plain": s.text_plain,
                "source_text": s.text, "target_text": t.text,
                "source_voice": s.voice.voice_id, "target_voice": t.voice.voice_id,
                "source_gender": s.voice.gender, "target_gender": t.voice.gender,
                "source_accent": s.voice.accent, "target_accent": t.voice.accent,
                "source_rate": s.rate, "target_rate": t.rate,
                "laughter_word": self.laughter_word}


def _word(w: str) -> str:
    return w.strip(".,?!;:'\"")


def _spec(uid: str, split: str, sid: int, text: str, plain: str, voice: Voice,
          rate: int) -> UtteranceSpec:
    bin_ = next(b for b, (lo, hi) in RATE_BINS.items() if lo <= rate <= hi)
    return UtteranceSpec(utt_id=uid, split=split, sentence_id=sid, text=text, text_plain=plain,
                         voice=voice, rate=rate, rate_bin=bin_, instruction=None)


def _target_voice(op: str, src: Voice, pool: list[Voice], check: VoiceCheck,
                  rng: random.Random, forbidden: frozenset[str] = frozenset()) -> Voice | None:
    """The target speaker of a gender or accent edit (None when no checked voice exists)."""
    if op == "gender":
        other = [v for v in pool if v.gender != src.gender]
        same_accent = [v for v in other if v.accent == src.accent]
        return rng.choice(same_accent or other) if other else None
    accents = [a for a in ACCENT_NAMES if a != src.accent]
    rng.shuffle(accents)
    for a in accents:
        v = make_voice(a, src.variant, src.pitch)
        if v.voice_id not in forbidden and check(v):
            return v
    return None


def plan_pair(i: int, split: str, op: str, sid: int, sentence: str, voice: Voice,
              pool: list[Voice], check: VoiceCheck, rng: random.Random,
              forbidden: frozenset[str] = frozenset()) -> EditPair | None:
    """One pair of operation `op` on `sentence` spoken by `voice` (None when it cannot be made)."""
    pid = f"p{i:05d}"
    rate = rng.randint(*RATE_BINS["normal"])
    words = sentence.split()
    src_text = tgt_text = sentence
    t_voice, t_rate, word = voice, rate, ""
    key = op
    if op in ("gender", "accent"):
        t_voice = _target_voice(op, voice, pool, check, rng, forbidden)
        if t_voice is None:
            return None
        key = t_voice.gender if op == "gender" else "accent"
    elif op in ("faster", "slower"):
        t_rate = rng.randint(*RATE_BINS["fast" if op == "faster" else "slow"])
    else:  # laughter after word `at` (1-based), named by its first occurrence
        at = rng.randint(1, len(words))
        word = _word(words[at - 1])
        at = next(j + 1 for j, w in enumerate(words) if _word(w) == word)
        tagged = " ".join(words[:at] + ["[laughter]"] + words[at:])
        src_text, tgt_text = (sentence, tagged) if op == "add_laughter" else (tagged, sentence)
    instruction = rng.choice(INSTRUCTIONS[key]).format(
        word=word, accent=ACCENT_NAMES.get(t_voice.accent, ""))
    return EditPair(pid, split, op, instruction,
                    _spec(f"{pid}s", split, sid, src_text, sentence, voice, rate),
                    _spec(f"{pid}t", split, sid, tgt_text, sentence, t_voice, t_rate), word)


def plan_pairs(cfg: EditPlanConfig, voices: list[Voice], check: VoiceCheck) -> list[EditPair]:
    """The full, deterministic list of pairs for `cfg` over the accepted source `voices`."""
    unknown = sorted(set(cfg.operations) - set(OPERATIONS))
    if unknown or not cfg.operations:
        raise ValueError(f"unknown operations {unknown}: use some of {', '.join(OPERATIONS)}")
    if cfg.n_pairs <= 0 or not voices:
        raise ValueError("need at least one pair and one accepted voice")
    rng = random.Random(cfg.seed)
    sentences = generate_sentences(cfg.n_sentences, cfg.seed)
    order = list(range(len(sentences)))
    rng.shuffle(order)
    n_held = max(1, int(len(sentences) * cfg.heldout_sentence_frac))
    held_sent, train_sent = order[:n_held], order[n_held:]
    train_voices, held_voices = split_voices(voices, cfg.n_heldout_voices, rng)
    pools = {"train": (train_voices, train_sent), "heldout_sentences": (train_voices, held_sent),
             "heldout_voices": (held_voices or train_voices, held_sent)}
    ids = {side: frozenset(v.voice_id for v in vs) if cfg.disjoint_targets else frozenset()
           for side, vs in (("train", train_voices), ("held", held_voices))}
    pairs: list[EditPair] = []
    i = 0
    while len(pairs) < cfg.n_pairs and i < 4 * cfg.n_pairs:
        r = rng.random()
        split = ("heldout_voices" if r < cfg.heldout_frac else
                 "heldout_sentences" if r < 2 * cfg.heldout_frac else "train")
        vpool, spool = pools[split]
        sid = rng.choice(spool)
        op = cfg.operations[i % len(cfg.operations)]  # balanced operations
        other = ids["train"] if split == "heldout_voices" else ids["held"]
        pair = plan_pair(i, split, op, sid, sentences[sid], rng.choice(vpool), vpool, check, rng,
                         other)
        i += 1
        if pair is not None:
            pairs.append(pair)
    return pairs
