"""`python -m autointerp.dashboard build|serve`: build the static feature dashboard, serve it.

    python -m autointerp.dashboard build --layer 12
    python -m autointerp.dashboard build --layers 12,6 --autointerp runs/tinycosy/autointerp
        --steering runs/tinycosy/steering --out runs/tinycosy/dashboard
    python -m autointerp.dashboard serve --site runs/tinycosy/dashboard --port 8765
"""

from __future__ import annotations

import argparse
import ipaddress
import json

from autointerp.dashboard.build import BuildConfig, build_site
from autointerp.dashboard.serve import SiteServer
from interp.cli import add_config_args, config_from_args, run_cli


def _build(args: argparse.Namespace) -> None:
    cfg = config_from_args(BuildConfig, args)
    site = build_site(cfg)
    meta = json.loads((site / "data" / "site.json").read_text())
    for entry in meta["layers"]:
        counts = ", ".join(f"{n} {m}" for m, n in entry["counts"].items())
        print(f"layer {entry['layer']}: {entry['n']} latents ({counts}), {entry['clips']} clips")
    print(f"steering runs linked: {meta['steering_runs']}")
    print(f"site: {site}/  — serve it: python -m autointerp.dashboard serve --site {site}")


def _serve(args: argparse.Namespace) -> None:
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    try:
        server = SiteServer(args.site, args.host, args.port)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise RuntimeError(f"cannot serve on {args.host}:{args.port} ({exc.strerror or exc}): "
                           "choose another --port (0: any free one)") from None
    if not loopback:
        print(f"warning: serving on {args.host}, reachable beyond this machine")
    print(f"serving {server.site} at {server.url}  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m autointerp.dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the static site from auto-interp output")
    add_config_args(b, BuildConfig)
    b.set_defaults(func=_build)
    s = sub.add_parser("serve", help="serve a built site (only files under it)")
    s.add_argument("--site", default="runs/tinycosy/dashboard", help="site folder (default: %(default)s)")
    s.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s, loopback)")
    s.add_argument("--port", type=int, default=8765, help="port, 0 for any free one (default: %(default)s)")
    s.set_defaults(func=_serve)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    run_cli(main)
