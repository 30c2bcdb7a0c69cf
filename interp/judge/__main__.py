"""CLI: `python -m interp.judge --predictions F --metadata M --audio_root D --output_dir O ...`

and `python -m interp.judge controls --metadata M --audio_root D --out DIR` for the Identity
and Noise control prediction sets.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from interp.cli import EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_USAGE, one_line
from interp.corpus.voices import GENDER_F0_SPLIT_HZ
from interp.judge.acoustic_backend import AcousticConfig
from interp.judge.api_backend import API_KEY_ENVS, ApiConfig
from interp.judge.controls import write_controls
from interp.judge.format import JudgeDataError
from interp.judge.runner import JudgeConfig, judge

EPILOG = """\
Limits per query (API backend): each request may take --timeout s. A timeout, HTTP 5xx/408/429
or malformed response body is retried after an exponential back-off (--backoff_base s, doubling,
at most --backoff_max s), on the next base URL (round-robin); each retry is logged with the
server's answer. A refused connection moves to the next URL at once; when every URL refused
--refused_limit times in a row the server is taken to be down and the remaining queries fail
at once. An answer that is not a valid letter is re-asked at once, at most --retries times, and
then counts as a wrong answer (MMAE). A query stops after --max_attempts HTTP requests in all;
then, or on any other HTTP 4xx, it is recorded in results.jsonl as failed with its reason.
A query that got no answer judged nothing: its rubric is undecided, not failed.
API key (optional): --api_key, else $JUDGE_API_KEY, else $OPENAI_API_KEY.

Exit codes: 0 every sample judged; 2 bad input (one line on stderr); 3 some samples could not be
judged (their count and the commonest errors are printed, no score; --accept_partial prints the
scores of the judged samples and exits 0); 130 interrupted (results.jsonl keeps every finished
query; re-run to resume).

Outputs in --output_dir: results.jsonl (one line per query; also the checkpoint: a re-run asks only
what has no line yet), per_sample.json (IFR, CR, EMR per id; null where a sample has no rubric of
that category, left out of that mean), taxonomy.json (means x100 overall and by complexity,
modality, granularity, operation), run_config.json.

Controls: python -m interp.judge controls --metadata M --audio_root D --out DIR [--seed S]
writes DIR/identity/predictions.json and DIR/noise/predictions.json to judge like any prediction set.
"""


def judge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m interp.judge", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="MMAE-compatible rubric judge (OpenAI-compatible audio LLM or acoustic).")
    p.add_argument("--predictions", type=Path, required=True, help="prediction file (JSON array)")
    p.add_argument("--metadata", type=Path, required=True, help="MMAE-meta.json")
    p.add_argument("--audio_root", type=Path, default=Path("."),
                   help="folder the audio paths are relative to (default: .)")
    p.add_argument("--output_dir", type=Path, required=True, help="outputs and checkpoint")
    p.add_argument("--base_urls", nargs="+", default=[],
                   help="OpenAI-compatible server URL(s), e.g. http://host:8000/v1; round-robin")
    p.add_argument("--concurrency", type=int, default=16, help="queries in flight (default 16)")
    p.add_argument("--retries", type=int, default=3,
                   help="re-asks after an unparsable/invalid answer (default 3)")
    p.add_argument("--max_attempts", type=int, default=10,
                   help="HTTP requests per query in all, re-asks included (default 10)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request (300)")
    p.add_argument("--model", default="Qwen3Omni-Instruct", help="model name sent to the server")
    p.add_argument("--backend", choices=("api", "acoustic"), default="api",
                   help="api: the LLM judge; acoustic: offline measurements (default api)")
    p.add_argument("--seed", type=int, default=0, help="seed of the option shuffles (0)")
    p.add_argument("--n_queries", type=int, default=3, help="asks per rubric (MMAE: 3)")
    p.add_argument("--pass_threshold", type=int, default=2, help="right answers to pass (2)")
    p.add_argument("--retry_failed", action="store_true",
                   help="on resume, ask again queries recorded as failed")
    p.add_argument("--sample_rate", type=int, default=None,
                   help="require this sample rate of every audio (default: any)")
    p.add_argument("--audio_style", choices=("input_audio", "audio_url"), default="input_audio",
                   help="send audio as input_audio parts or as audio_url data URIs")
    p.add_argument("--temperature", type=float, default=None, help="default: server's")
    p.add_argument("--max_tokens", type=int, default=1024, help="reply length cap (1024)")
    p.add_argument("--backoff_base", type=float, default=1.0, help="first back-off, s (1.0)")
    p.add_argument("--backoff_max", type=float, default=60.0, help="longest back-off, s (60)")
    p.add_argument("--refused_limit", type=int, default=2,
                   help="refusals in a row from every URL before the server counts as down (2)")
    p.add_argument("--accept_partial", action="store_true",
                   help="score the judged samples and exit 0 even if some could not be judged")
    p.add_argument("--api_key", default=None, help=f"default: ${' or $'.join(API_KEY_ENVS)}")
    p.add_argument("--prompt_dir", type=Path, default=None,
                   help="folder with system.txt and user.txt (default: data/judge)")
    p.add_argument("--gender_threshold_hz", type=float, default=GENDER_F0_SPLIT_HZ,
                   help=f"acoustic backend: median F0 >= this is female ({GENDER_F0_SPLIT_HZ:g})")
    p.add_argument("--gender_by", choices=("f0", "classifier"), default="f0",
                   help="acoustic backend: gender by the median-F0 threshold (espeak's voices) "
                   "or by the gender instrument's P(male) (real voices)")
    p.add_argument("--instruments", default="",
                   help="swap listening instruments, e.g. asr=DIR,gender=DIR (local folders: "
                   "the shipped kinds, a Whisper checkpoint for asr, transformers audio "
                   "classifiers whose labels name 'male' for gender or 'laugh' for laughter; "
                   "docs/instruments.md)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


@dataclass(frozen=True)
class ShowOptions:
    """How the CLI shows a judge run; none of it changes what is judged or written."""

    accept_partial: bool = False
    """Score the judged samples and exit 0 even if some could not be judged."""
    progress: bool = True
    """Show a progress bar."""
    verbose: bool = False
    """Debug logging."""


def parse_judge_args(argv: list[str]) -> tuple[JudgeConfig, ShowOptions]:
    """The MMAE-style flags → the judge's config and the CLI's own options (the one place the
    parsed namespace is read)."""
    parser = judge_parser()
    a = parser.parse_args(argv)
    if a.backend == "api" and not a.base_urls:
        parser.error("--base_urls is required with --backend api")
    api = ApiConfig(
        base_urls=tuple(a.base_urls), model=a.model, concurrency=a.concurrency,
        retries=a.retries, max_attempts=a.max_attempts, timeout=a.timeout,
        backoff_base=a.backoff_base, backoff_max=a.backoff_max, refused_limit=a.refused_limit,
        audio_style=a.audio_style,
        temperature=a.temperature, max_tokens=a.max_tokens, api_key=a.api_key,
        prompt_dir=a.prompt_dir)
    if a.instruments:
        from interp.instruments.common import use_instruments

        use_instruments(a.instruments)
    acoustic = AcousticConfig(gender_threshold_hz=a.gender_threshold_hz, gender_by=a.gender_by)
    cfg = JudgeConfig(
        predictions=a.predictions, metadata=a.metadata, audio_root=a.audio_root,
        output_dir=a.output_dir, backend=a.backend, seed=a.seed, n_queries=a.n_queries,
        pass_threshold=a.pass_threshold, retry_failed=a.retry_failed, sample_rate=a.sample_rate,
        api=api, acoustic=acoustic)
    return cfg, ShowOptions(a.accept_partial, not a.no_progress, a.verbose)


@dataclass(frozen=True)
class ControlsConfig:
    """The Identity and Noise control prediction sets of an MMAE metadata file."""

    metadata: Path
    """MMAE-meta.json"""
    out: Path
    """folder for identity/ and noise/"""
    audio_root: Path = Path(".")
    """folder the metadata's audio paths are relative to"""
    seed: int = 0
    """noise seed"""


def parse_controls_args(argv: list[str]) -> ControlsConfig:
    p = argparse.ArgumentParser(prog="python -m interp.judge controls",
                                description="Write Identity and Noise control prediction sets.")
    p.add_argument("--metadata", type=Path, required=True)
    p.add_argument("--audio_root", type=Path, default=Path("."))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    a = p.parse_args(argv)
    return ControlsConfig(a.metadata, a.out, a.audio_root, a.seed)


def run_controls(cfg: ControlsConfig) -> dict[str, Path]:
    """Write the control sets; {"identity": predictions.json, "noise": predictions.json}."""
    return write_controls(cfg.metadata, cfg.audio_root, cfg.out, cfg.seed)


def _fmt(v: float | None) -> str:
    return "   n/a" if v is None else f"{v:6.2f}"


def print_counts(s: dict) -> None:
    print(f"\n== judge ({s['backend']}, {s['model']}) -> {s['output_dir']}")
    print(f"samples {s['n_samples']} (judged {s['samples_judged']}, could not be judged "
          f"{s['samples_unjudged']})  queries {s['queries_planned']} (asked {s['queries_asked']}, "
          f"resumed {s['queries_resumed']}, failed {s['queries_failed']}, of which no answer "
          f"{s['queries_unanswered']}; unsupported {s['queries_unsupported']})")
    for error, n in s["errors"]:
        print(f"  {n} x {error}")


def print_summary(s: dict) -> None:
    o = s["overall"]
    partial = f" over the {s['samples_judged']} judged samples" if s["samples_unjudged"] else ""
    print(f"IFR {_fmt(o['IFR'])} (n={o['n_IFR']})  CR {_fmt(o['CR'])} (n={o['n_CR']})  "
          f"EMR {_fmt(o['EMR'])} (n={o['n_EMR']}){partial}   unsupported rubrics {o['unsupported']}")
    if o["unsupported"]:
        print(f"over supported rubrics only: IFR {_fmt(o['IFR_supported'])}  "
              f"CR {_fmt(o['CR_supported'])}")
    for group in ("complexity", "modality"):
        for name, g in list(s["taxonomy"].get(group, {}).items())[:8]:
            print(f"  {group:<10} {name:<20} n={g['n_samples']:<4} IFR {_fmt(g['IFR'])}  "
                  f"CR {_fmt(g['CR'])}  EMR {_fmt(g['EMR'])}")


def report(s: dict, accept_partial: bool) -> int:
    """Print the counts, and the scores unless some samples could not be judged (then exit 3,
    unless the user accepts partial results)."""
    print_counts(s)
    if s["samples_unjudged"] and not accept_partial:
        print(f"error: {s['samples_unjudged']} of {s['n_samples']} samples could not be judged "
              f"({s['queries_unanswered']} queries got no answer); no score printed. Fix the "
              "server and re-run with --retry_failed, or pass --accept_partial to score the "
              "judged samples", file=sys.stderr)
        return EXIT_PARTIAL
    print_summary(s)
    return 0


def controls_main(argv: list[str]) -> int:
    try:
        paths = run_controls(parse_controls_args(argv))
    except (JudgeDataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0


def run_judge(cfg: JudgeConfig, show: ShowOptions | None = None) -> int:
    """Judge with a progress bar, print the counts and scores; returns the CLI's exit code."""
    from tqdm import tqdm

    show = show or ShowOptions()
    missing = [f"--{name} {path}" for name, path in (("predictions", cfg.predictions),
                                                     ("metadata", cfg.metadata))
               if not Path(path).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}; an MMAE set is a folder with "
              "predictions.json and MMAE-meta.json (python -m steering.run writes one per "
              "target and strength under its --out, in mmae/)", file=sys.stderr)
        return EXIT_USAGE
    bar: list[tqdm] = []

    def on_plan(n: int) -> None:
        bar.append(tqdm(total=n, unit="query", disable=not show.progress, dynamic_ncols=True))

    def progress(rec: dict) -> None:
        bar[0].update(1)
        if rec["status"] != "ok":
            bar[0].set_postfix_str(f"last {rec['status']}: {str(rec['error'])[:40]}")

    try:
        summary = judge(cfg, progress=progress, on_plan=on_plan)
    except (JudgeDataError, FileNotFoundError, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: results.jsonl keeps every finished query; re-run to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if bar:
            bar[0].close()
    return report(summary, show.accept_partial)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "controls":
        return controls_main(argv[1:])
    cfg, show = parse_judge_args(argv)
    logging.basicConfig(level=logging.DEBUG if show.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return run_judge(cfg, show)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops like Ctrl-C
    sys.exit(main())
