"""What the corpus will contain, decided up front and deterministically from (config, seed).

Splits: `train` (train voices × train sentences), `heldout_sentences` (train voices × held-out
sentences) and `heldout_voices` (held-out voices × held-out sentences: nothing seen in training).
Rate is asked for by an instruction ("Please speak slowly.") whenever it is slow or fast; the voice
is given by a prompt utterance of the same speaker at normal rate (zero-shot cloning pairs).

Domains: a sentence comes from the planted-concept grammar (`sentences.py`) or, for a share
`open_frac` of utterances, from open English (`open_domain.py`); tags, rate, instruction and voice
are planted on both alike, and both have held-out sentences (the open ones with words no training
sentence has). With `open_frac` 0 the plan is the grammar-only plan, draw for draw.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from interp.audio import SAMPLE_RATE
from interp.corpus.open_domain import OpenDomain, OpenDomainConfig, open_domain
from interp.corpus.sentences import generate_sentences
from interp.corpus.voices import Voice

SPLITS = ("train", "heldout_sentences", "heldout_voices")
TAGS = ("laughter", "breath")
# Words per minute for each rate bin (espeak-ng's default is 175).
RATE_BINS: dict[str, tuple[int, int]] = {"slow": (100, 140), "normal": (155, 195), "fast": (215, 270)}
INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "slow": ("Please speak slowly.", "Speak slowly.", "Say this slowly and calmly."),
    "fast": ("Please speak quickly.", "Speak fast.", "Say this quickly."),
}
# The instruct prefix TinyCosy reads before every instruction (interp.models.text_tokenizer's
# SYSTEM_PROMPT, a test keeps them equal): its words, like the instructions', are never held out.
SYSTEM_PROMPT = "You are a helpful assistant."
DOMAINS = ("grammar", "open")
OPEN_FIELDS = ("open_frac", "n_open_sentences", "open_heldout_word_frac")


@dataclass(frozen=True)
class CorpusConfig:
    """Size and mixture of the corpus. Fields double as `--help` text of the build CLI."""

    n: int = 24000
    """number of utterances"""
    n_sentences: int = 6000
    """distinct sentences drawn from the grammar"""
    heldout_sentence_frac: float = 0.1
    """fraction of sentences kept out of training"""
    n_heldout_voices: int = 12
    """voices kept out of training (half male, half female)"""
    heldout_frac: float = 0.06
    """fraction of utterances in each held-out split"""
    laughter_frac: float = 0.25
    """fraction of utterances with a [laughter] tag"""
    breath_frac: float = 0.15
    """fraction of utterances with a [breath] tag"""
    sample_rate: int = SAMPLE_RATE
    """sample rate of the stored audio"""
    seed: int = 0
    """seed of every random choice"""
    voices: tuple[str, ...] = field(default_factory=tuple)
    """voice ids (accent+variant@pNN); empty = every default accent × variant"""
    open_frac: float = 0.0
    """share of utterances whose sentence is open English (interp.corpus.open_domain) instead of
    the grammar; 0 = the grammar-only corpus, planned exactly as before"""
    n_open_sentences: int = 12000
    """distinct open-domain sentences (with --open-frac > 0; held out: --heldout-sentence-frac)"""
    open_heldout_word_frac: float = 0.05
    """share of the open vocabulary no training sentence contains; every held-out open sentence
    has at least one such word"""

    def to_dict(self) -> dict:
        """The config as saved in the manifest; without open text its open-domain fields are left
        out, so a grammar-only corpus's manifest (and resuming one built before they existed)
        stays as it was."""
        out = {**asdict(self), "voices": list(self.voices)}
        return out if self.open_frac else {k: v for k, v in out.items() if k not in OPEN_FIELDS}


@dataclass(frozen=True)
class UtteranceSpec:
    """One utterance to render, with its planted ground truth."""

    utt_id: str
    split: str
    sentence_id: int
    text: str  # with inline tags, e.g. "I told him [laughter] it was fine."
    text_plain: str  # the words only
    voice: Voice
    rate: int
    rate_bin: str
    instruction: str | None
    prompt_id: str = ""
    domain: str = "grammar"  # where the sentence comes from: one of DOMAINS


def _insert_tags(sentence: str, rng: random.Random, cfg: CorpusConfig) -> str:
    words = sentence.split()
    for tag, frac in zip(TAGS, (cfg.laughter_frac, cfg.breath_frac), strict=True):
        if rng.random() < frac:
            at = rng.randint(1, len(words))  # after word at-1: mid-sentence or at the end
            words.insert(at, f"[{tag}]")
    return " ".join(words)


def split_voices(voices: list[Voice], n_heldout: int, rng: random.Random):
    by_gender = {g: [v for v in voices if v.gender == g] for g in ("male", "female")}
    heldout: list[Voice] = []
    for g in ("male", "female"):
        pool = sorted(by_gender[g], key=lambda v: v.voice_id)
        heldout += rng.sample(pool, min(len(pool) - 1, n_heldout // 2)) if len(pool) > 1 else []
    train = [v for v in voices if v not in heldout]
    return train, heldout


def _pair_prompts(specs: list[UtteranceSpec], rng: random.Random) -> list[UtteranceSpec]:
    """Give every utterance a prompt: another utterance of its voice, from its own split when it
    can (normal rate first), else from another split; "" only for a voice heard once."""
    by_voice: dict[str, list[UtteranceSpec]] = defaultdict(list)
    for s in specs:
        by_voice[s.voice.voice_id].append(s)
    out = []
    for s in specs:
        others = [o for o in by_voice[s.voice.voice_id] if o.utt_id != s.utt_id]
        same = [o for o in others if o.split == s.split]
        pool = same or others
        normal = [o for o in pool if o.rate_bin == "normal"]
        prompt = rng.choice(normal or pool).utt_id if pool else ""
        out.append(UtteranceSpec(**{**s.__dict__, "prompt_id": prompt}))
    return out


def open_generator(cfg: CorpusConfig) -> OpenDomain:
    """The open-domain generator of `cfg`; its `heldout_words` never occur in a training
    utterance: the grammar's, the instructions' and the instruct prefix's words are reserved."""
    reserved = [SYSTEM_PROMPT, *(i for ins in INSTRUCTIONS.values() for i in ins)]
    return open_domain(OpenDomainConfig(heldout_word_frac=cfg.open_heldout_word_frac,
                                        seed=cfg.seed), reserved)


def open_sentences(cfg: CorpusConfig, first_id: int) -> tuple[list[str], list[int], list[int]]:
    """The open-domain sentences of `cfg` (ids from `first_id`): (texts, train ids, held-out
    ids); held-out ones each have a word no training sentence (of either domain) has."""
    gen = open_generator(cfg)
    n_held = max(1, int(cfg.n_open_sentences * cfg.heldout_sentence_frac))
    texts = gen.sentences(cfg.n_open_sentences - n_held) + gen.sentences(n_held, heldout=True)
    ids = list(range(first_id, first_id + len(texts)))
    return texts, ids[: len(texts) - n_held], ids[len(texts) - n_held:]


def plan_corpus(cfg: CorpusConfig, voices: list[Voice]) -> list[UtteranceSpec]:
    """The full, deterministic list of utterances for `cfg` over the accepted `voices`."""
    if cfg.n <= 0:
        raise ValueError(f"--n {cfg.n}: the corpus needs at least one utterance")
    if not voices:
        raise ValueError("no usable voices: every requested voice was refused")
    if not 0 <= cfg.open_frac <= 1:
        raise ValueError(f"--open-frac {cfg.open_frac}: give a share between 0 and 1")
    rng = random.Random(cfg.seed)
    sentences = generate_sentences(cfg.n_sentences, cfg.seed)
    n_held = max(1, int(len(sentences) * cfg.heldout_sentence_frac))
    order = list(range(len(sentences)))
    rng.shuffle(order)
    held_sent, train_sent = order[:n_held], order[n_held:]
    train_voices, held_voices = split_voices(voices, cfg.n_heldout_voices, rng)
    pools = {"train": (train_voices, train_sent), "heldout_sentences": (train_voices, held_sent),
             "heldout_voices": (held_voices or train_voices, held_sent)}
    open_pools: dict[str, list[int]] = {}
    domain_rng = random.Random(f"domain:{cfg.seed}")  # its own stream: the grammar's draws stay
    if cfg.open_frac:
        texts, open_train, open_held = open_sentences(cfg, len(sentences))
        sentences = sentences + texts
        open_pools = {"train": open_train, "heldout_sentences": open_held,
                      "heldout_voices": open_held}
    specs = []
    for i in range(cfg.n):
        r = rng.random()
        split = ("heldout_voices" if r < cfg.heldout_frac else
                 "heldout_sentences" if r < 2 * cfg.heldout_frac else "train")
        vpool, spool = pools[split]
        domain = "grammar"
        if open_pools and domain_rng.random() < cfg.open_frac:
            domain, spool = "open", open_pools[split]
        sid = rng.choice(spool)
        gender = rng.choice(("male", "female"))  # balance genders: there are 7 male variants, 5 female
        vpool = [v for v in vpool if v.gender == gender] or vpool
        rate_bin = rng.choice(list(RATE_BINS))
        specs.append(UtteranceSpec(
            utt_id=f"u{i:06d}", split=split, sentence_id=sid,
            text=_insert_tags(sentences[sid], rng, cfg), text_plain=sentences[sid],
            voice=rng.choice(vpool), rate=rng.randint(*RATE_BINS[rate_bin]), rate_bin=rate_bin,
            instruction=rng.choice(INSTRUCTIONS[rate_bin]) if rate_bin in INSTRUCTIONS else None,
            domain=domain,
        ))
    return _pair_prompts(specs, rng)
