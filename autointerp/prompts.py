"""Modality-aware chat prompts (templates in data/autointerp/) and their reply parsers.

Explanation: text windows for text-modal latents, base64 wav clips (`input_audio` parts) for
audio-modal ones, both for mixed; then one line on what the latent does to the output (its
output-side sentence), when the backbone has a code profile. Scoring shows held-out examples *without* activations: text
windows with the position of interest marked, clips with its time.
"""

from __future__ import annotations

import base64
import string
from dataclasses import dataclass
from pathlib import Path

from autointerp.api import reply_json
from interp.paths import DATA

PROMPT_DIR = DATA / "autointerp"
FILES = ("explain_system", "explain_text", "explain_audio", "explain_mixed", "explain_output",
         "explain_reply", "score_system", "score_user")


@dataclass(frozen=True)
class Templates:
    text: dict[str, str]

    @classmethod
    def load(cls, folder: Path = PROMPT_DIR) -> Templates:
        missing = [f for f in FILES if not (folder / f"{f}.txt").is_file()]
        if missing:
            raise FileNotFoundError(f"prompt files missing in {folder}: {missing}")
        return cls({f: (folder / f"{f}.txt").read_text().strip() for f in FILES})


def audio_part(path: Path) -> dict:
    b64 = base64.b64encode(path.read_bytes()).decode()
    return {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}


def _text(s: str) -> dict:
    return {"type": "text", "text": s}


def marked_window(text: dict, show_acts: bool) -> str:
    """Tokens joined; activating ones <<tok>>(act) when showing acts, else the centre [[tok]]."""
    out = []
    for i, (tok, act) in enumerate(zip(text["tokens"], text["acts"], strict=True)):
        if show_acts and act > 0:
            out.append(f"<<{tok}>>({act:.2f})")
        elif not show_acts and i == text["center"]:
            out.append(f"[[{tok}]]")
        else:
            out.append(tok)
    return "".join(out)


def _example_parts(i: int, ex: dict, layer_dir: Path, show_acts: bool, want_text: bool,
                   want_audio: bool) -> list[dict]:
    parts: list[dict] = []
    clip = ex.get("clip")
    if want_audio and clip and clip.get("wav"):
        peak = max(clip["trace"], key=lambda ta: ta[1]) if clip["trace"] else None
        mid = ex_time(ex)
        note = (f" (strongest activation {peak[1]:.2f} at {peak[0]:.2f} s)" if show_acts and peak
                else f" (moment of interest: {mid:.2f} s)")
        parts += [_text(f"Example {i} audio{note}:"), audio_part(layer_dir / clip["wav"])]
    if want_text and ex.get("text"):
        parts.append(_text(f"Example {i} text: {marked_window(ex['text'], show_acts)}"))
    return parts


def ex_time(ex: dict) -> float:
    """Seconds into the clip of the example's own position (`t_center`, set on scoring
    examples; else the clip's middle, where the cut puts it unless near an edge)."""
    clip = ex["clip"]
    return float(ex.get("t_center", (clip["t1"] - clip["t0"]) / 2))


def explain_parts(tpl: Templates, modality: str, examples: list[dict], layer_dir: Path,
                  output: str | None = None) -> list[dict]:
    """The input side (examples where the latent fires), then, when given, the output side:
    the sentence of `autointerp.output_side` (what its promoted speech codes sound like)."""
    want_text, want_audio = modality in ("text", "mixed"), modality in ("audio", "mixed")
    parts = [_text(tpl.text[f"explain_{modality}"])]
    for i, ex in enumerate(examples, 1):
        parts += _example_parts(i, ex, layer_dir, True, want_text, want_audio)
    if output:
        parts.append(_text(string.Template(tpl.text["explain_output"]).safe_substitute(
            output=output)))
    return parts + [_text(tpl.text["explain_reply"])]


def score_parts(tpl: Templates, label: str, examples: list[dict], layer_dir: Path
                ) -> list[dict]:
    """Every example gets a text window or a clip, whichever it has (speech → clip)."""
    parts = []
    for i, ex in enumerate(examples, 1):
        has_clip = bool(ex.get("clip") and ex["clip"].get("wav"))
        parts += _example_parts(i, ex, layer_dir, False, not has_clip, True)
    user = string.Template(tpl.text["score_user"]).safe_substitute(label=label, n=len(examples))
    return parts + [_text(user)]


def parse_label(reply: str) -> str:
    label = reply_json(reply).get("label")
    if not isinstance(label, str) or not label.strip():
        raise ValueError("reply has no non-empty `label`")
    return label.strip()[:300]


def parse_matches(n: int):
    """A parser for a {"matches": [n values in [0, 1]]} reply."""

    def parse(reply: str) -> list[float]:
        m = reply_json(reply).get("matches")
        if not isinstance(m, list) or len(m) != n:
            raise ValueError(f"`matches` must be a list of {n} values")
        vals = [float(v) for v in m]
        if any(not 0 <= v <= 1 for v in vals):
            raise ValueError("`matches` values must lie in [0, 1]")
        return vals

    return parse
