"""`python -m workbench.report --run runs/demo`: the paper's headline figures next to ours, one page.

Reads what the stages wrote under a run folder (each stage's own JSON, never recomputed here) and
writes `report.json` (every figure with its source file) and `report.html` (self-contained:
plotly's JS is inlined once). A stage that has not run shows up as "not run" with the command
that makes it, so the report can be built at any point of the pipeline.
"""

from __future__ import annotations

import argparse
import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from interp.atomic import atomic_write_json, atomic_write_text
from interp.cli import run_cli
from workbench.report.sections import (
    Section,
    autointerp_section,
    benchmark_section,
    codec_section,
    instruments_section,
    probes_section,
    relative_source,
    relative_text,
    run_label,
    sae_section,
    sweep_section,
    tinycosy_section,
)
from workbench.report.steering import (
    edit_steering_section,
    frontier_section,
    judge_section,
    layers_section,
    steering_section,
    tinyedit_section,
)

SECTIONS = [instruments_section, codec_section, tinycosy_section, sweep_section, sae_section, probes_section,
            autointerp_section, steering_section, frontier_section, layers_section, judge_section,
            tinyedit_section,
            edit_steering_section, benchmark_section]


@dataclass
class Report:
    run: str
    created: str
    sections: list[Section] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"run": self.run, "created": self.created,
                "sections": [s.to_dict() for s in self.sections]}


def build_report(run: str | Path, sections: list[Callable[[Path], Section]] | None = None
                 ) -> Report:
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder {run}; run `make demo` first")
    report = Report(run_label(run), time.strftime("%Y-%m-%d %H:%M"))
    for make in sections or SECTIONS:
        report.sections.append(relative_paths(make(run), run))
    headline = headlines(report.sections)
    if headline.rows:
        report.sections.insert(0, headline)
    return report


def relative_paths(sec: Section, run: Path) -> Section:
    """No absolute path of this machine in the report: sources relative to the repository root
    (or the run folder), and the same for any path a note or a figure's text quotes."""
    for r in sec.rows:
        r.source = relative_source(r.source, run)
        r.figure, r.ours = (relative_text(v, run) if isinstance(v, str) else v
                            for v in (r.figure, r.ours))
    sec.note = relative_text(sec.note, run)
    return sec


# (section function, how many of its first rows) that make the headline table
HEADLINE_ROWS = {"Layer-12 SAE": 1, "Auto-interp": 5, "Steering": 5, "MMAE rubric judge": 0}


def headlines(sections: list[Section]) -> Section:
    """The paper's headline figures next to ours, copied from the sections below."""
    out = Section("Headlines", "make demo", ran=True,
                  note="The rows below are repeated from their sections, with their sources.")
    for s in sections:
        n = next((n for prefix, n in HEADLINE_ROWS.items() if s.title.startswith(prefix)), 0)
        out.rows += s.rows[:n]
    return out


def _cell(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def render_html(report: Report) -> str:
    parts, first_plot = [], True
    for s in report.sections:
        rows = "".join(
            f"<tr><td>{_cell(r.figure)}</td><td>{_cell(r.paper)}</td><td><b>{_cell(r.ours)}</b>"
            f"</td><td class=src>{_cell(r.source)}</td></tr>" for r in s.rows)
        plots = []
        for fig in s.figures:
            plots.append(fig.to_html(full_html=False, include_plotlyjs=first_plot))
            first_plot = False
        status = "" if s.ran else (f"<p class=missing>not run yet: <code>{html.escape(s.command)}"
                                   "</code></p>")
        note = f"<p>{html.escape(s.note)}</p>" if s.note else ""
        if s.links:
            note += "<p>" + " · ".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>'
                                       for text, href in s.links) + "</p>"
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>{status}{note}"
                     "<table><tr><th>figure</th><th>paper (CosyVoice3)</th><th>ours</th>"
                     f"<th>source</th></tr>{rows}</table>{''.join(plots)}</section>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Workbench report · {html.escape(report.run)}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1em}} td,th{{border-bottom:1px solid #ddd;
padding:.25em .8em;text-align:left}} .src{{color:#777;font-size:.85em}}
.missing{{color:#a33}} section{{margin-bottom:2.5em}}</style></head><body>
<h1>Audio-LM interpretability workbench — report</h1>
<p>Run <code>{html.escape(report.run)}</code>, built {report.created}. Every figure links to the
file it was read from; the paper's figures are those of <i>Interpreting and Steering a TTS LM
with SAEs</i> on CosyVoice3, ours are on the embedded TinyCosy.</p>
{''.join(parts)}</body></html>"""


def write_report(report: Report, run: Path) -> tuple[Path, Path]:
    j, h = run / "report.json", run / "report.html"
    atomic_write_json(j, report.to_dict())
    atomic_write_text(h, render_html(report))
    return j, h


def summary(report: Report) -> str:
    lines = []
    for s in report.sections:
        lines.append(f"{s.title}{'' if s.ran else '  (not run: ' + s.command + ')'}")
        for r in s.rows:
            lines.append(f"  {r.figure:<44} paper {_cell(r.paper):>14}   ours {_cell(r.ours)}")
    return "\n".join(lines)


def screenshot(page: Path, png: Path, width: int = 1100, height: int = 1400) -> None:
    """A PNG of the top of the report, with Debian's chromium through Playwright (for README)."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise FileNotFoundError("no chromium for --png: apt-get install -y chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.goto(page.resolve().as_uri())
        tab.wait_for_timeout(1500)  # plotly draws after load
        tab.screenshot(path=str(png))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workbench.report", description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/demo"),
                        help="run folder (default: runs/demo, what `make demo` writes)")
    parser.add_argument("--png", type=Path, default=None,
                        help="also save a screenshot of the page's top here (needs chromium)")
    args = parser.parse_args()
    report = build_report(args.run)
    j, h = write_report(report, args.run)
    if args.png:
        screenshot(h, args.png)
    print(summary(report))
    print(f"\n→ {h}\n→ {j}")


__all__ = ["Report", "build_report", "render_html", "write_report"]

if __name__ == "__main__":
    run_cli(main)
