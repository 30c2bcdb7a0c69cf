"""`python -m interp.models "text" --prompt VOICE --out speech.wav`: speak with a backbone
(TinyCosy by default); `--list-voices` prints its prompt bank."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from interp.atomic import atomic_save
from interp.cli import run_cli
from interp.models.generate import SamplingConfig
from interp.models.registry import USAGE, load_backbone


def list_voices(voices: dict[str, dict]) -> str:
    head = f"{'voice':24s} {'gender':6s} {'accent':15s} {'split':15s} prompt text"
    return "\n".join([head] + [f"{v:24s} {p.get('gender', '?'):6s} {p.get('accent', '?'):15s} "
                               f"{p.get('split', '?'):15s} {p.get('text', '')}"
                               for v, p in sorted(voices.items())])


def prepare_out(out: Path) -> None:
    """Create the output's folder; refuse, in one line, a name soundfile cannot write."""
    if out.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise ValueError(f"--out {out}: give a .wav, .flac or .ogg file name")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'tts.wav'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create its folder ({exc.strerror})") from None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.models", description=__doc__)
    parser.add_argument("text", nargs="?", help="what to say; tags [laughter] [breath] allowed")
    parser.add_argument("--prompt", default="en-us+f2@p50",
                        help="voice id of the prompt bank (--list-voices), or a wav to clone")
    parser.add_argument("--instruction", default=None, help='e.g. "Please speak slowly."')
    parser.add_argument("--out", type=Path, default=Path("tts.wav"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=SamplingConfig.top_k,
                        help="sampling: at most this many candidates per step (1 = greedy)")
    parser.add_argument("--top-p", type=float, default=SamplingConfig.top_p,
                        help="sampling: nucleus mass")
    parser.add_argument("--model", default="tinycosy", help=f"backbone: {USAGE}")
    parser.add_argument("--list-voices", action="store_true", help="print the prompt bank")
    parser.add_argument("--listen", action="store_true",
                        help="transcribe what was spoken with the shipped open-English "
                             "recogniser (data/instruments/asr_open, open-vocabulary decode) and "
                             "print it with its WER against the text")
    args = parser.parse_args()
    backbone = load_backbone(args.model)
    if args.list_voices:
        if not backbone.voices:
            raise ValueError(f"{args.model} has no prompt bank: prompt it with a wav file")
        print(list_voices(backbone.voices))
        return
    if not args.text:
        parser.error("give the text to speak (or --list-voices)")
    if why := backbone.render_missing():
        raise ValueError(f"cannot speak with {args.model}: {why}")
    prepare_out(args.out)  # before generating: a bad --out must not cost the generated audio
    audio = backbone.tts(args.text, args.prompt, args.instruction, args.seed,
                         SamplingConfig(top_k=args.top_k, top_p=args.top_p))
    atomic_save(args.out, lambda p: sf.write(p, audio, backbone.sample_rate))
    print(f"wrote {args.out} ({len(audio) / backbone.sample_rate:.2f} s)")
    if args.listen:
        print(heard(audio, backbone.sample_rate, args.text))


def heard(audio: np.ndarray, sr: int, text: str) -> str:
    """What the open-English recogniser (`open_asr_model`) hears in `audio` (its open-vocabulary
    reading where it has a word list, else the greedy one) and the WER against `text`, on one
    line."""
    from interp.instruments.meter import open_asr_model
    from interp.instruments.text import normalize_text, wer

    readings = open_asr_model().readings(audio, sr)
    transcript = readings.get("open", readings["greedy"])
    words = normalize_text(re.sub(r"\[[a-z_]+\]", " ", text))  # tags are not words
    return f'heard: "{transcript}" (WER {wer(words, transcript):.0%} against "{words}")'


if __name__ == "__main__":
    run_cli(main)
