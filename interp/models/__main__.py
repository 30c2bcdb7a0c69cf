"""`python -m interp.models "text" --prompt VOICE --out speech.wav`: speak with TinyCosy."""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from interp.atomic import atomic_save
from interp.cli import run_cli
from interp.models.generate import SamplingConfig
from interp.models.tts import TTS
from interp.paths import CODEC_DIR, TINYCOSY_DIR


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
                        help="voice id of the prompt bank, or a 16 kHz wav to clone")
    parser.add_argument("--instruction", default=None, help='e.g. "Please speak slowly."')
    parser.add_argument("--out", type=Path, default=Path("tts.wav"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=SamplingConfig.top_k,
                        help="sampling: at most this many candidates per step (1 = greedy)")
    parser.add_argument("--top-p", type=float, default=SamplingConfig.top_p,
                        help="sampling: nucleus mass")
    parser.add_argument("--model", type=Path, default=TINYCOSY_DIR)
    parser.add_argument("--codec", type=Path, default=CODEC_DIR)
    parser.add_argument("--list-voices", action="store_true", help="print the prompt bank")
    args = parser.parse_args()
    engine = TTS(args.model, args.codec)
    if args.list_voices:
        for v, p in sorted(engine.prompts.items()):
            print(f"{v:24s} {p['gender']:6s} {p['accent']:15s} {p['split']:15s} {p['text']}")
        return
    if not args.text:
        parser.error("give the text to speak (or --list-voices)")
    prepare_out(args.out)  # before generating: a bad --out must not cost the generated audio
    audio = engine(args.text, args.prompt, args.instruction, args.seed,
                   SamplingConfig(top_k=args.top_k, top_p=args.top_p))
    atomic_save(args.out, lambda p: sf.write(p, audio, engine.codec.sample_rate))
    print(f"wrote {args.out} ({len(audio) / engine.codec.sample_rate:.2f} s)")


if __name__ == "__main__":
    run_cli(main)
