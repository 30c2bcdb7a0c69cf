"""Serve a dashboard site: only regular files under the site folder, never a directory listing,
on the loopback interface unless told otherwise; byte ranges so audio players can seek."""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import logging
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json", ".wav": "audio/wav",
         ".png": "image/png", ".svg": "image/svg+xml"}


def resolve_request(site: Path, url_path: str) -> Path | None:
    """The file a request path names inside `site`, or None when it must be refused: `..` or
    backslashes or NUL anywhere, a target outside the site after following symlinks, anything
    that is not a regular file (directories: only `/` itself, as its index.html)."""
    path = urllib.parse.unquote(url_path.split("?", 1)[0].split("#", 1)[0])
    parts = [p for p in path.split("/") if p]
    if any(p in ("..", ".") or "\\" in p or "\0" in p for p in parts):
        return None
    if not parts:
        parts = ["index.html"]
    root = site.resolve()
    target = Path(os.path.realpath(root.joinpath(*parts)))
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b` / `bytes=a-` / `bytes=-n` → inclusive (start, end); None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    start_s, _, end_s = spec.strip().partition("-")
    try:
        if not start_s:
            n = int(end_s)
            return (max(0, size - n), size - 1) if n > 0 and size else None
        start = int(start_s)
        end = min(int(end_s), size - 1) if end_s else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end else None


class SiteHandler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of files under `self.server.site`; everything else is refused."""

    server_version = "dashboard"
    sys_version = ""

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._send(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(body=True)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def _refuse(self, code: int) -> None:
        self.send_error(code)

    def _send(self, body: bool) -> None:
        target = resolve_request(self.server.site, self.path)  # type: ignore[attr-defined]
        if target is None:
            self._refuse(404)
            return
        size = target.stat().st_size
        start, end, code = 0, size - 1, 200
        if self.headers.get("Range"):
            rng = _parse_range(self.headers["Range"], size)
            if rng is None or rng[0] >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            (start, end), code = rng, 206
        self.send_response(code)
        self.send_header("Content-Type", TYPES.get(target.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body and size:
            with target.open("rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = f.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)


@dataclass(frozen=True)
class ServeConfig:
    """Which built site to serve, and where."""

    site: str = "runs/tinycosy/dashboard"
    """site folder"""
    host: str = "127.0.0.1"
    """interface (loopback unless told otherwise)"""
    port: int = 8765
    """port, 0 for any free one"""

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach `host`."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def open_server(cfg: ServeConfig) -> SiteServer:
    """A bound server for `cfg` (call `serve_forever`, or use `start` for a thread); a port in
    use becomes one line that says what to change."""
    try:
        return SiteServer(Path(cfg.site), cfg.host, cfg.port)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise RuntimeError(f"cannot serve on {cfg.host}:{cfg.port} ({exc.strerror or exc}): "
                           "choose another --port (0: any free one)") from None


class SiteServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site: Path, host: str = "127.0.0.1", port: int = 0):
        site = Path(site)
        if not (site / "index.html").is_file():
            raise FileNotFoundError(f"{site} is not a dashboard site (no index.html): run "
                                    "`python -m autointerp.dashboard build --layer 12`")
        self.site = site.resolve()
        super().__init__((host, port), SiteHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


def start(site: Path | str, host: str = "127.0.0.1", port: int = 0) -> SiteServer:
    """Serve `site` from a daemon thread; `port=0` picks a free port (see `.url`)."""
    server = SiteServer(Path(site), host, port)
    threading.Thread(target=server.serve_forever, name="dashboard-server", daemon=True).start()
    return server


@contextlib.contextmanager
def serving(site: Path | str, host: str = "127.0.0.1", port: int = 0) -> Iterator[SiteServer]:
    """`start`, then shut the server down and close its socket on the way out."""
    server = start(site, host, port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


_running: dict[tuple[str, str, int], SiteServer] = {}


def show(site: Path | str = "runs/tinycosy/dashboard", port: int = 0, host: str = "127.0.0.1",
         width: str | int = "100%", height: int = 720, latent: int | None = None,
         layer: int | None = None):
    """Open the dashboard inside a notebook: serve it from a thread (once per site and port) and
    return an `IPython.display.IFrame` of it, optionally at one latent's page."""
    from IPython.display import IFrame

    key = (str(Path(site).resolve()), host, port)
    if key not in _running:
        _running[key] = start(site, host, port)
    url = _running[key].url
    params = {k: v for k, v in (("layer", layer), ("latent", latent)) if v is not None}
    if params:
        url += "#" + urllib.parse.urlencode(params)
    return IFrame(url, width=width, height=height)

