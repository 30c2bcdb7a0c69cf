"""The dashboard in a real browser (headless Chromium through playwright): index, search,
modality filter, a latent page whose audio clip loads with a duration, a text window, layers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autointerp.dashboard import build_site, serving
from autointerp.dashboard.build import BuildConfig
from autointerp.dashboard.synthetic import write_layer, write_steering

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium; "
                             "`make test` installs it)")]

AUDIO_DURATION = """() => new Promise((resolve, reject) => {
  const a = document.querySelector('audio');
  if (!a) return reject(new Error('no <audio> on the page'));
  if (a.readyState >= 1 && a.duration > 0) return resolve(a.duration);
  a.addEventListener('loadedmetadata', () => resolve(a.duration));
  a.addEventListener('error', () => reject(new Error('audio error ' + (a.error && a.error.code))));
  a.load();
})"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dash_browser")
    write_layer(root / "autointerp" / "layer_12", n=240, n_evidence=8)
    write_layer(root / "autointerp" / "layer_6", n=12, n_evidence=2, seed=5)
    write_steering(root / "steering", layer=12, latents=[0, 4])
    return build_site(BuildConfig(autointerp=str(root / "autointerp"), layers="12,6"))


def _wait(page, view: str, latent: int | None = None) -> None:
    """Until the view is rendered (for a latent page: that latent's)."""
    page.wait_for_function(
        """([view, head]) => document.body.dataset.ready === '1' && document.body.dataset.view === view
           && (!head || (document.querySelector('.latent-head h2') || {}).textContent.includes(head))""",
        arg=[view, "" if latent is None else f"latent {latent} "], timeout=15_000)


def test_browse_search_filter_and_play(site, tmp_path):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with serving(site) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        _wait(page, "index")
        assert page.locator("#rows tr").count() == 100  # first page of 240
        assert page.locator("#count").inner_text() == "240 of 240 latents"
        cards = page.locator(".cards").inner_text()  # human names; the paper's figure labelled
        assert "Audio-modal latents" in cards and "paper, CosyVoice3: 0.921" in cards
        assert "modality_counts" not in cards and "planted_recall" not in cards
        page.screenshot(path=str(tmp_path / "index.png"))
        page.click("#next")
        assert page.locator("#pageinfo").inner_text() == "page 2 / 3"
        page.select_option("#sort", "auroc")  # back to page 1, best AUROC first
        aurocs = [float(x) for x in page.locator("#rows td:nth-child(6)").all_inner_texts()]
        assert aurocs == sorted(aurocs, reverse=True)
        assert page.locator("#pageinfo").inner_text() == "page 1 / 3"
        page.fill("#amin", "0.9")
        aurocs = [float(x) for x in page.locator("#rows td:nth-child(6)").all_inner_texts()]
        assert aurocs and min(aurocs) >= 0.9
        page.fill("#amin", "")

        page.fill("#q", "laughter")
        labels = page.locator("#rows .lab").all_inner_texts()
        assert labels and all("laughter" in s.lower() for s in labels)
        page.select_option("#mod", "audio")
        tags = page.locator("#rows .tag").all_inner_texts()
        assert tags and set(tags) == {"audio"} and len(tags) < len(labels)
        assert "mod=audio" in page.url and "q=laughter" in page.url

        page.click("#rows tr[data-latent='0'] td.lab")  # audio, evidence, steering
        _wait(page, "latent", 0)
        assert "laughter onset" in page.locator(".label").inner_text()
        assert page.locator("#hist .plot-container").count() == 1  # plotly drew it
        assert "laughter" in page.locator("section", has_text="Steering").inner_text()
        assert page.locator(".lens tr").count() > 2
        does = page.locator("#output-side").inner_text()  # what it does, beside what activates it
        assert "What it does" in does and "higher-pitched voiced frames: +20% F0" in does
        assert page.locator("#output-side audio").count() == 2
        assert "What activates it" in page.locator("section", has_text="What activates it")\
            .first.inner_text()
        assert page.evaluate(AUDIO_DURATION) > 0
        assert page.locator("canvas[data-k]").count() >= 4
        assert page.locator("text=no audio kept").count() >= 1  # a trace-only clip
        page.screenshot(path=str(tmp_path / "latent_audio.png"), full_page=True)

        page.goto(server.url + "#layer=12&latent=1")  # a text latent: shaded tokens
        _wait(page, "latent", 1)
        assert page.locator(".tokens .tok.center").count() >= 4
        page.screenshot(path=str(tmp_path / "latent_text.png"), full_page=True)
        page.go_back()
        _wait(page, "latent", 0)
        page.click("text=← all latents")
        _wait(page, "index")
        assert page.input_value("#q") == "laughter"  # the index kept its state

        page.select_option("#layer", "6")
        _wait(page, "index")
        assert page.locator("#count").inner_text() == "12 of 12 latents"
        page.screenshot(path=str(tmp_path / "layer6.png"))
        browser.close()
    assert not errors, errors
    assert (tmp_path / "latent_audio.png").stat().st_size > 10_000
