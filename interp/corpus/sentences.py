"""Distinct English sentences from a small grammar that ships with the package (nothing downloaded).

Templates fill slots from `lexicon.json`; a seeded sampler draws as many distinct sentences as asked
for (tens of thousands are available), 4–16 words long, statements and questions.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

_LEXICON = Path(__file__).with_name("lexicon.json")

TEMPLATES: tuple[str, ...] = (
    "The {adj} {noun} {verb_past} {prep} the {place}.",
    "{Name} {verb_past} the {adj} {noun} {time}.",
    "My {relative} said that the {noun} was {adj}.",
    "Did you see the {adj} {noun} {prep} the {place}?",
    "{Name} and {Name2} {verb_past} {prep} the {place} {time}.",
    "We should {verb} the {noun} before the {event}.",
    "There is a {adj} {noun} {prep} the {place}.",
    "I think the {noun} will {verb} {time}.",
    "Why did {Name} {verb} the {adj} {noun}?",
    "The {noun} in the {place} looks {adj} {time}.",
    "{Name} wanted to {verb} a {adj} {noun} for the {event}.",
    "Please bring the {noun} to the {place} {time}.",
    "After the {event}, {Name} {verb_past} the {noun}.",
    "It was {adj} when the {noun} {verb_past} {prep} the {place}.",
    "How many {noun}s did you {verb} {time}?",
    "Nobody knew why the {adj} {noun} {verb_past} so {adverb}.",
    "{Name} {verb_past} {adverb} and then left the {place}.",
    "The {relative} of {Name} keeps a {adj} {noun} {prep} the {place}.",
    "If the {noun} is {adj}, we will {verb} it {time}.",
    "Every {day}, {Name} walks {prep} the {place} with a {noun}.",
)

_SLOT = re.compile(r"\{(\w+)\}")


@lru_cache(maxsize=1)
def lexicon() -> dict[str, list[str]]:
    """Word lists by slot name (``Name``/``Name2`` draw from ``name``)."""
    return json.loads(_LEXICON.read_text())


def _fill(template: str, rng: random.Random) -> str:
    words = lexicon()
    used: dict[str, str] = {}

    def pick(match: re.Match[str]) -> str:
        slot = match.group(1)
        key = slot.rstrip("0123456789").lower()
        choices = [w for w in words[key] if w not in used.values()]
        used[slot] = rng.choice(choices)
        return used[slot]

    return _SLOT.sub(pick, template)


def generate_sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct sentences, deterministic in `seed`."""
    if n <= 0:
        raise ValueError(f"asked for {n} sentences: give a positive number")
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"the grammar ran out of distinct sentences at {len(seen)}; ask for fewer")
        sentence = _fill(rng.choice(TEMPLATES), rng)
        seen.setdefault(sentence[0].upper() + sentence[1:], None)
    return list(seen)
