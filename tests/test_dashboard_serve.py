"""The dashboard server is safe to run: files under the site only (no `..`, no encoded `..`, no
symlink escape), no directory listing, GET/HEAD only, loopback by default; ranges for audio."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autointerp.dashboard import build_site, serving, show
from autointerp.dashboard.build import BuildConfig
from autointerp.dashboard.serve import SiteServer, resolve_request
from autointerp.dashboard.synthetic import write_layer

SECRET = "TOP-SECRET-CONTENT"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dash")
    write_layer(root / "autointerp" / "layer_12", n=8, n_evidence=2)
    site = build_site(BuildConfig(autointerp=str(root / "autointerp"), layer=12))
    (root / "secret.txt").write_text(SECRET)
    os.symlink(root / "secret.txt", site / "link.txt")
    os.symlink(root, site / "linkdir")
    return site


@pytest.fixture(scope="module")
def server(site):
    with serving(site) as srv:
        yield srv


def _get(server, path: str, method: str = "GET", headers: dict | None = None):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_serves_site_files_on_loopback(server):
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    resp, body = _get(server, "/")
    assert resp.status == 200 and b"Feature dashboard" in body
    assert resp.getheader("Content-Type").startswith("text/html")
    resp, body = _get(server, "/data/site.json?x=1")
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    resp, _ = _get(server, "/data/layer_12/clips/latent_00000_00.wav", method="HEAD")
    assert resp.status == 200 and resp.getheader("Content-Type") == "audio/wav"


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/data/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
    "/static/..%2f..%2fsecret.txt", "/static/..\\..\\secret.txt", "/static/%5c..%5csecret.txt",
    "//etc/passwd", "/link.txt", "/linkdir/secret.txt", "/index.html%00.json", "/./index.html",
])
def test_traversal_and_symlink_escape_are_refused(server, path):
    resp, body = _get(server, path)
    assert resp.status == 404 and SECRET.encode() not in body


@pytest.mark.parametrize("path", ["/data/", "/data", "/static/", "/data/layer_12/clips/"])
def test_no_directory_listing(server, path):
    resp, body = _get(server, path)
    assert resp.status == 404 and b"latent_" not in body and b"site.json" not in body


def test_only_get_and_head(server):
    resp, _ = _get(server, "/index.html", method="POST")
    assert resp.status == 501


def test_byte_ranges_for_audio(server, site):
    wav = (site / "data/layer_12/clips/latent_00000_00.wav").read_bytes()
    resp, body = _get(server, "/data/layer_12/clips/latent_00000_00.wav",
                      headers={"Range": "bytes=10-19"})
    assert resp.status == 206 and body == wav[10:20]
    assert resp.getheader("Content-Range") == f"bytes 10-19/{len(wav)}"
    resp, body = _get(server, "/data/layer_12/clips/latent_00000_00.wav",
                      headers={"Range": "bytes=-4"})
    assert resp.status == 206 and body == wav[-4:]
    resp, _ = _get(server, "/data/layer_12/clips/latent_00000_00.wav",
                   headers={"Range": f"bytes={len(wav) + 5}-"})
    assert resp.status == 416


def test_resolve_request(site):
    assert resolve_request(site, "/") == (site / "index.html").resolve()
    assert resolve_request(site, "/static/app.js?v=2#x") == (site / "static/app.js").resolve()
    assert resolve_request(site, "/static") is None
    assert resolve_request(site, "/nope.js") is None


def test_refuses_a_folder_that_is_not_a_site(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m autointerp.dashboard build"):
        SiteServer(tmp_path)


def test_notebook_helper_returns_an_iframe(site):
    frame = show(site, latent=3, layer=12, height=500)
    assert frame.src.startswith("http://127.0.0.1:") and frame.src.endswith("#layer=12&latent=3")
    assert show(site).src.split("#")[0] == frame.src.split("#")[0]  # one server per site
    assert 'src="http://127.0.0.1' in frame._repr_html_()
    host, port = frame.src.split("/")[2].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/data/site.json")
    assert conn.getresponse().status == 200


def test_serve_cli_prints_the_url(site):
    proc = subprocess.Popen([sys.executable, "-m", "autointerp.dashboard", "serve", "--site",
                             str(site), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving" in line and "http://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        host, port = url.split("/")[2].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_takes_a_config(site):
    """A notebook opens the server from ServeConfig, no Namespace; a port in use is one line."""
    from autointerp.dashboard.serve import ServeConfig, open_server

    cfg = ServeConfig(site=str(site), port=0)
    assert cfg.loopback and not ServeConfig(host="0.0.0.0").loopback
    server = open_server(cfg)
    try:
        with pytest.raises(RuntimeError, match="choose another --port"):
            open_server(ServeConfig(site=str(site), port=server.server_address[1]))
    finally:
        server.server_close()
