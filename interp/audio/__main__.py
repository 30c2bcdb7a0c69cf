"""`python -m interp.audio fit|fit-decoder|roundtrip|tokenize|encode|decode`: the 25 Hz speech codec.

Each subcommand parses into the configs of `interp.audio.run` and calls its `run_*` function.
"""

from __future__ import annotations

import argparse
import json
import time

from interp.audio.codec import CodecConfig
from interp.audio.roundtrip import RoundTripConfig
from interp.audio.run import (
    DecodeConfig,
    DecoderJob,
    EncodeConfig,
    FitJob,
    RoundTripJob,
    TokenizeConfig,
    run_decode,
    run_encode,
    run_fit,
    run_fit_decoder,
    run_roundtrip,
    run_tokenize,
)
from interp.audio.token_decoder import DecoderFitConfig
from interp.cli import add_config_args, config_from_args, run_cli
from interp.corpus.table import load_table


def fit(job: FitJob, cfg: CodecConfig) -> None:
    start = time.time()
    codec = run_fit(job, cfg)
    n_utts = min(job.max_utts, len(load_table(job.corpus, "train")))
    print(f"codec: {codec.n_codes} codes at {cfg.token_rate:g} Hz, fit on {n_utts} train "
          f"utterances in {time.time() - start:.0f} s → {job.out}")


def roundtrip(job: RoundTripJob, cfg: RoundTripConfig) -> None:
    r, out = run_roundtrip(job, cfg), job.out_dir
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
    def readings(x: dict) -> str:
        return f"original {x['original']}, round trip {x['roundtrip']}" + (
            f", vocoder alone {x['vocoder']}" if "vocoder" in x else "")

    print(f"  recogniser WER ({w['recognizer']}): {readings(w)}" if w["original"] is not None
          else f"  WER: {w['why_null']}")
    for d, x in w.get("by_domain", {}).items():
        print(f"    {d} ({x['utterances']} utterances): {readings(x)}")
    print(f"  listen: {out}/examples/   plot: {out}/roundtrip.html")


def fit_decoder(job: DecoderJob, cfg: DecoderFitConfig) -> None:
    f = run_fit_decoder(job, cfg)
    e = f["heldout_mel_mse"]
    print(f"token decoder: {f['steps']} steps in {f['minutes']} min on {f['train_utterances']} "
          f"utterances; held-out-voice log-mel error (standardised MSE) code book {e['codebook']}"
          f" → decoder {e['decoder']}\n  {job.out} is a codec folder that decodes through it: "
          f"python -m interp.audio roundtrip --codec {job.out}")


def tokenize(cfg: TokenizeConfig) -> None:
    m = run_tokenize(cfg)
    by = m.get("tokenizer") or f"codec {m['codec']}"
    print(f"tokens of {m['utterances']} utterances ({by}) → {cfg.out_dir}")


def encode(cfg: EncodeConfig) -> None:
    print(json.dumps(run_encode(cfg).tolist()))


def decode(cfg: DecodeConfig) -> None:
    d = run_decode(cfg)
    print(f"wrote {d['out']} ({d['tokens']} tokens, {d['seconds']:.2f} s)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m interp.audio", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the tokenizer on a corpus's train split")
    add_config_args(f, FitJob)
    add_config_args(f, CodecConfig, skip=("mel",))
    fd = sub.add_parser("fit-decoder", help="learn a token → frames decoder for a codec "
                        "(reads each token with its neighbours)")
    add_config_args(fd, DecoderJob)
    add_config_args(fd, DecoderFitConfig)
    r = sub.add_parser("roundtrip", help="measure wav → tokens → wav on held-out voices")
    add_config_args(r, RoundTripJob)
    add_config_args(r, RoundTripConfig)
    t = sub.add_parser("tokenize", help="speech tokens of a whole corpus (resumable shards)")
    add_config_args(t, TokenizeConfig)
    e = sub.add_parser("encode", help="print the tokens of a 16 kHz wav")
    add_config_args(e, EncodeConfig, positional=("wav",))
    d = sub.add_parser("decode", help="write the wav of a token file (.npy or JSON list)")
    add_config_args(d, DecodeConfig, positional=("tokens",))
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.cmd == "fit":
        fit(config_from_args(FitJob, args), config_from_args(CodecConfig, args))
    elif args.cmd == "fit-decoder":
        fit_decoder(config_from_args(DecoderJob, args), config_from_args(DecoderFitConfig, args))
    elif args.cmd == "roundtrip":
        roundtrip(config_from_args(RoundTripJob, args), config_from_args(RoundTripConfig, args))
    else:
        cls, command = {"tokenize": (TokenizeConfig, tokenize), "encode": (EncodeConfig, encode),
                        "decode": (DecodeConfig, decode)}[args.cmd]
        command(config_from_args(cls, args))


if __name__ == "__main__":
    run_cli(main)
