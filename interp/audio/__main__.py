"""`python -m interp.audio fit|roundtrip|tokenize|encode|decode`: the 25 Hz speech codec."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from interp.audio.codec import CodecConfig, SpeechCodec
from interp.audio.roundtrip import RoundTripConfig, measure_roundtrip
from interp.audio.tokenize_corpus import tokenize_corpus
from interp.audio.wav import read_wav
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import load_audio, load_table

DEFAULT_CODEC = Path("data/codec")


def fit(args: argparse.Namespace) -> None:
    cfg = config_from_args(CodecConfig, args)
    rows = load_table(args.corpus, "train")
    random.Random(cfg.seed).shuffle(rows)
    rows = rows[: args.max_utts]
    start = time.time()
    audios = [load_audio(args.corpus, r)[0] for r in tqdm(rows, desc="load", unit="utt")]
    codec = SpeechCodec.fit(audios, cfg)
    codec.save(args.out)
    print(f"codec: {codec.n_codes} codes at {cfg.token_rate:g} Hz, fit on {len(rows)} train "
          f"utterances in {time.time() - start:.0f} s → {args.out}")


def roundtrip(args: argparse.Namespace) -> None:
    codec = SpeechCodec.load(args.codec)
    out = args.out or Path(args.corpus).parent / "codec_roundtrip"
    r = measure_roundtrip(args.corpus, codec, config_from_args(RoundTripConfig, args), out)
    print(f"\nround trip on {r['utterances']} {r['split']} utterances ({out}/roundtrip.json):")
    for g, f in r["f0"].items():
        print(f"  {g:6s} median F0 {f['median_f0_original']:.0f} → {f['median_f0_roundtrip']:.0f}"
              f" Hz, median ratio {f['median_ratio']}, within 10%: {f['frac_within_10pct']:.0%}")
    print(f"  duration ratio {r['duration_ratio']['mean']}, voiced duration ratio "
          f"{r['voiced_duration_ratio']['median']}")
    la = r["laughter_auroc"]
    print(f"  laughter-vs-rest token AUROC: original {la['original']}, round trip {la['roundtrip']}")
    print(f"  codes used {r['codes']['used']}/{r['codes']['of']}, "
          f"perplexity {r['codes']['perplexity']}")
    w = r["wer"]
    print(f"  recogniser WER: original {w['original']}, round trip {w['roundtrip']}"
          if w["original"] is not None else f"  WER: {w['why_null']}")
    print(f"  listen: {out}/examples/   plot: {out}/roundtrip.html")


def tokenize(args: argparse.Namespace) -> None:
    out = args.out or Path(args.corpus).parent / "tokens"
    m = tokenize_corpus(args.corpus, args.codec, out, args.workers)
    print(f"tokens of {m['utterances']} utterances (codec {m['codec']}) → {out}")


def encode(args: argparse.Namespace) -> None:
    codec = SpeechCodec.load(args.codec)
    tokens = codec.encode(read_wav(args.wav, codec.sample_rate))
    if args.out:
        np.save(args.out, tokens)
    print(json.dumps(tokens.tolist()))


def decode(args: argparse.Namespace) -> None:
    codec = SpeechCodec.load(args.codec)
    tokens = (np.load(args.tokens) if args.tokens.suffix == ".npy"
              else np.array(json.loads(args.tokens.read_text())))
    sf.write(args.out, codec.decode(tokens), codec.sample_rate)
    print(f"wrote {args.out} ({len(tokens)} tokens, {len(tokens) / codec.cfg.token_rate:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.audio", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the tokenizer on a corpus's train split")
    f.add_argument("--corpus", type=Path, default=Path("runs/tinycosy/corpus"))
    f.add_argument("--out", type=Path, default=DEFAULT_CODEC, help="codec folder to write")
    f.add_argument("--max-utts", type=int, default=2000, help="train utterances to load")
    add_config_args(f, CodecConfig, skip=("mel",))
    r = sub.add_parser("roundtrip", help="measure wav → tokens → wav on held-out voices")
    r.add_argument("--corpus", type=Path, default=Path("runs/tinycosy/corpus"))
    r.add_argument("--codec", type=Path, default=DEFAULT_CODEC)
    r.add_argument("--out", type=Path, default=None, help="default: <corpus>/../codec_roundtrip")
    add_config_args(r, RoundTripConfig)
    t = sub.add_parser("tokenize", help="speech tokens of a whole corpus (resumable shards)")
    t.add_argument("--corpus", type=Path, default=Path("runs/tinycosy/corpus"))
    t.add_argument("--codec", type=Path, default=DEFAULT_CODEC)
    t.add_argument("--out", type=Path, default=None, help="default: <corpus>/../tokens")
    t.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    e = sub.add_parser("encode", help="print the tokens of a 16 kHz wav")
    e.add_argument("wav", type=Path)
    e.add_argument("--codec", type=Path, default=DEFAULT_CODEC)
    e.add_argument("--out", type=Path, default=None, help="also save them as .npy")
    d = sub.add_parser("decode", help="write the wav of a token file (.npy or JSON list)")
    d.add_argument("tokens", type=Path)
    d.add_argument("--codec", type=Path, default=DEFAULT_CODEC)
    d.add_argument("--out", type=Path, default=Path("decoded.wav"))
    args = parser.parse_args()
    commands = {"fit": fit, "roundtrip": roundtrip, "tokenize": tokenize, "encode": encode,
                "decode": decode}
    commands[args.cmd](args)


if __name__ == "__main__":
    run_cli(main)
