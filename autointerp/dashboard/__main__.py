"""`python -m autointerp.dashboard build|serve`: build the static feature dashboard, serve it.

    python -m autointerp.dashboard build --layer 12
    python -m autointerp.dashboard build --layers 12,6 --autointerp runs/tinycosy/autointerp
        --steering runs/tinycosy/steering --out runs/tinycosy/dashboard
    python -m autointerp.dashboard serve --site runs/tinycosy/dashboard --port 8765
"""

from __future__ import annotations

import argparse
import json

from autointerp.dashboard.build import BuildConfig, build_site
from autointerp.dashboard.serve import ServeConfig, open_server
from interp.cli import add_config_args, config_from_args, run_cli


def build(cfg: BuildConfig) -> None:
    site = build_site(cfg)
    meta = json.loads((site / "data" / "site.json").read_text())
    for entry in meta["layers"]:
        counts = ", ".join(f"{n} {m}" for m, n in entry["counts"].items())
        print(f"layer {entry['layer']}: {entry['n']} latents ({counts}), {entry['clips']} clips")
    print(f"steering runs linked: {meta['steering_runs']}")
    print(f"site: {site}/  — serve it: python -m autointerp.dashboard serve --site {site}")


def serve(cfg: ServeConfig) -> None:
    server = open_server(cfg)
    if not cfg.loopback:
        print(f"warning: serving on {cfg.host}, reachable beyond this machine")
    print(f"serving {server.site} at {server.url}  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


COMMANDS = {"build": (BuildConfig, build), "serve": (ServeConfig, serve)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m autointerp.dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_config_args(sub.add_parser("build", help="write the static site from auto-interp output"),
                    BuildConfig)
    add_config_args(sub.add_parser("serve", help="serve a built site (only files under it)"),
                    ServeConfig)
    args = parser.parse_args(argv)
    cls, command = COMMANDS[args.cmd]
    command(config_from_args(cls, args))


if __name__ == "__main__":
    run_cli(main)
