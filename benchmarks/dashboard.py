"""Dashboard at SAE scale: build time and index load time of 16,384 synthetic latents, measured in
headless Chromium (playwright), plus the in-page cost of a search, a sort and opening a latent
page right after (plotly.min.js, which the index preloads when idle, may still be loading then).

`index_ready_ms` is the time from navigation start to the first page of 100 rows on screen
(site.json + the layer's column index fetched, parsed, filtered, sorted, rendered); each repeat
opens a fresh browser context (cold cache). Skipped with a reason when Chromium is absent.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from autointerp.dashboard.build import BuildConfig, build_site
from autointerp.dashboard.serve import serving
from autointerp.dashboard.synthetic import write_layer

READY = "document.body.dataset.ready === '1' && document.body.dataset.view === '{}'"
TIMED_INPUT = """([sel, value, event]) => { const el = document.querySelector(sel);
  const t = performance.now(); el.value = value; el.dispatchEvent(new Event(event));
  return performance.now() - t; }"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _measure(url: str, chromium: str, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    ready, search, sort, latent = [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(repeats):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(url)
            page.wait_for_function(READY.format("index"), timeout=60_000)
            ready.append(page.evaluate("window.__dash.indexReady"))
            search.append(page.evaluate(TIMED_INPUT, ["#q", "laughter", "input"]))
            page.evaluate(TIMED_INPUT, ["#q", "", "input"])
            sort.append(page.evaluate(TIMED_INPUT, ["#sort", "auroc", "change"]))
            t = time.perf_counter()  # latent 0 has evidence, clips and a plotly histogram
            page.evaluate("location.hash = 'layer=12&latent=0'")
            page.wait_for_function(READY.format("latent"), timeout=60_000)
            latent.append((time.perf_counter() - t) * 1000)
            context.close()
        browser.close()

    def stats(xs: list[float]) -> dict:
        return {"median": round(statistics.median(xs), 1), "min": round(min(xs), 1)}

    return {"index_ready_ms": stats(ready), "search_ms": stats(search), "sort_ms": stats(sort),
            "open_latent_ms": stats(latent)}


def run(n_latents: int = 16_384, repeats: int = 5) -> dict:
    chromium = _chromium()
    if chromium is None:
        return {"skipped": "Debian chromium is not installed (apt-get install -y chromium)"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "autointerp"
        write_layer(root / "layer_12", n=n_latents, n_evidence=16, seed=0)
        t = time.perf_counter()
        site = build_site(BuildConfig(autointerp=str(root), layer=12))
        build_s = time.perf_counter() - t
        index_bytes = (site / "data/layer_12/index.json").stat().st_size
        with serving(site) as server:
            figures = _measure(server.url, chromium, repeats)
    return {"n_latents": n_latents, "repeats": repeats, "build_s": round(build_s, 2),
            "index_json_kb": round(index_bytes / 1024, 1), **figures}


def line(d: dict) -> str:
    """The one-line summary `python -m benchmarks` prints."""
    if "skipped" in d:
        return f"dashboard: skipped ({d['skipped']})"
    return (f"dashboard: {d['n_latents']:,} latents, index ready in "
            f"{d['index_ready_ms']['median']} ms (median of {d['repeats']}), search "
            f"{d['search_ms']['median']} ms, sort {d['sort_ms']['median']} ms, "
            f"built in {d['build_s']} s")


if __name__ == "__main__":
    import json

    result = run()
    print(json.dumps(result, indent=1))
    print(line(result))
