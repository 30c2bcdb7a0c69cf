"""`python -m interp.corpus build|import|info`: the synthetic speech corpus with planted ground
truth, or your own recordings imported into the same layout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interp.cli import EXIT_PARTIAL, add_config_args, config_from_args, run_cli
from interp.corpus.build import CorpusJob, run_corpus
from interp.corpus.importer import ImportConfig, print_summary, run_import
from interp.corpus.plan import CorpusConfig
from interp.corpus.table import load_manifest


def _print_summary(out: Path, manifest: dict) -> None:
    s = manifest["summary"]
    print(f"\ncorpus: {out}  ({s['utterances']} utterances, {s['hours']:.2f} h of audio, "
          f"{s['voices']} voices, {s['sentences']} sentences, built in {s['build_seconds']} s)")
    for key in ("split", "domain", "gender", "accent", "rate_bin", "tags"):
        if key in s:  # a corpus summarised before domains existed has no "domain"
            print(f"  {key:9s} " + "  ".join(f"{k}={v}" for k, v in s[key].items()))
    if manifest["refused_voices"]:
        print(f"  refused voices (F0 contradicts gender): {', '.join(manifest['refused_voices'])}")
    print(f"  table: {out / 'utterances.parquet'}   audio: {out / 'wav'}/")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m interp.corpus", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="render the corpus (resumes where a killed build stopped)")
    add_config_args(b, CorpusJob)
    add_config_args(b, CorpusConfig)
    m = sub.add_parser("import", help="turn your own recordings (a manifest or a folder) into a "
                       "corpus folder (resumes where a killed import stopped; exit 3 when rows "
                       "were skipped)", description=ImportConfig.__doc__)
    add_config_args(m, ImportConfig, positional=("source",))
    i = sub.add_parser("info", help="print the summary of a built or imported corpus")
    i.add_argument("corpus", type=Path)
    args = parser.parse_args()
    if args.cmd == "build":
        job = config_from_args(CorpusJob, args)
        _print_summary(job.out, run_corpus(job, config_from_args(CorpusConfig, args)))
    elif args.cmd == "import":
        cfg = config_from_args(ImportConfig, args)
        manifest = run_import(cfg)
        print_summary(Path(cfg.out), manifest)
        if manifest["summary"]["skipped"]:
            sys.exit(EXIT_PARTIAL)
    else:
        manifest = load_manifest(args.corpus)
        if "summary" not in manifest:
            raise ValueError(f"{args.corpus} is not finished; run the build command again")
        if manifest.get("kind") == "imported":
            print_summary(args.corpus, manifest)
        else:
            _print_summary(args.corpus, manifest)
        print(json.dumps(manifest["config"]))


if __name__ == "__main__":
    run_cli(main)
